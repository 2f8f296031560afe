"""The customer dialogue's callbacks, registered by name in one explicit registry (STEPS)."""

from bot.dialogue import _apply, _linking, _status  # noqa: F401  (they register their steps)
from bot.dialogue._common import STEPS

__all__ = ["STEPS"]
