"""The customer dialogue's callbacks, registered by name in one explicit registry (STEPS), and
the renderers of texts built from several catalog entries (shared with the agent desk)."""

from bot.dialogue import (  # noqa: F401  (they register their steps)
    _apply,
    _care,
    _handoff,
    _linking,
    _paging,
    _status,
)
from bot.dialogue import _render as render
from bot.dialogue._common import STEPS

__all__ = ["STEPS", "render"]
