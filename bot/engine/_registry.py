"""Explicit registry of the callbacks flows may name: conditions, actions and views.

Flows refer to callbacks by name; only names registered here resolve (no dotted imports), so a
typo in a flow file is a load-time error with the file and the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bot.engine._turn import Turn


@dataclass(frozen=True, slots=True)
class Choice:
    """A dynamic button a view offers: a literal label or a message key, a trigger and its arg."""

    trigger: str
    arg: str | None = None
    label: str | None = None  # literal text (an order's name)
    label_key: str | None = None  # or a catalog key
    label_params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class View:
    """What a state's prompt needs: parameters for its text, and buttons computed per turn."""

    params: dict[str, Any] = field(default_factory=dict)
    choices: list[Choice] = field(default_factory=list)
    # extra messages shown before the prompt, (key, params)
    before: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


Condition = Callable[["Turn"], bool]
Action = Callable[["Turn"], None]
ViewFn = Callable[["Turn"], View]
F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    def __init__(self) -> None:
        self.conditions: dict[str, Condition] = {}
        self.actions: dict[str, Action] = {}
        self.views: dict[str, ViewFn] = {}

    def _add(self, table: dict[str, Any], kind: str, name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            if name in table:
                raise ValueError(f"{kind} {name!r} registered twice")
            table[name] = fn
            return fn

        return register

    def condition(self, name: str) -> Callable[[F], F]:
        """Register a condition: Turn -> bool. It may set turn.error to explain a refusal."""
        return self._add(self.conditions, "condition", name)

    def action(self, name: str) -> Callable[[F], F]:
        """Register an action: Turn -> None. It writes through turn.uow and turn.say()."""
        return self._add(self.actions, "action", name)

    def view(self, name: str) -> Callable[[F], F]:
        """Register a view: Turn -> View, the params and buttons of a state's prompt."""
        return self._add(self.views, "view", name)
