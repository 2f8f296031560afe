"""The one way to say no: a message key and its parameters, raised inside a unit of work (which
then rolls back) and shown by whoever catches it, in the reader's own language."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Render = Callable[..., str]  # (key, **params) -> text, e.g. a catalog bound to a locale


class Refusal(Exception):
    """Refused: nothing was changed; `key` and `params` say why. `also` adds further lines
    (e.g. the cap after an amount that is too high)."""

    def __init__(self, key: str, /, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
        self.also: tuple[tuple[str, dict[str, Any]], ...] = ()

    def plus(self, key: str, /, **params: Any) -> Refusal:
        """The same refusal with one more line."""
        self.also = (*self.also, (key, params))
        return self

    def text(self, render: Render) -> str:
        """The whole refusal rendered by `render(key, **params)`."""
        return "".join(render(k, **p) for k, p in ((self.key, self.params), *self.also))
