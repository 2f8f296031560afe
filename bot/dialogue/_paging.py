"""Long lists in pages: a customer with 120 orders gets a page of them (newest first) with
"more" / "back" buttons and can type an order number to search, instead of one keyboard of 122
buttons that Telegram refuses."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.dialogue._common import STEPS
from bot.engine import Choice, Turn

T = TypeVar("T")
KEY = "page"  # conversation data: {"state": "flow.state", "n": page index, "query": text}


@dataclass
class Page(Generic[T]):
    items: list[T]  # the ones shown now
    nav: list[Choice]  # previous / next / all
    query: str | None  # the search typed, if any
    found: bool  # the search matched something (or there is none)
    total: int  # how many after the search


def _where(turn: Turn) -> str:
    return f"{turn.conv.flow}.{turn.state}"


def _current(turn: Turn) -> dict[str, object]:
    saved = turn.data.get(KEY)
    if isinstance(saved, dict) and saved.get("state") == _where(turn):
        return saved
    return {"state": _where(turn), "n": 0, "query": None}


def page(turn: Turn, items: Sequence[T], matches: Callable[[T, str], bool]) -> Page[T]:
    """The current page of `items` (already in the order to show), after the typed search."""
    saved = _current(turn)
    query = saved.get("query")
    chosen = list(items)
    found = True
    if isinstance(query, str) and query:
        hits = [item for item in items if matches(item, query)]
        found = bool(hits)
        chosen = hits or chosen
    size = turn.config.dialogue.page_size
    pages = max(1, -(-len(chosen) // size))
    n = min(max(int(str(saved.get("n", 0))), 0), pages - 1)
    nav: list[Choice] = []
    if n > 0:
        nav.append(Choice("page", "prev", label_key="button.page_prev"))
    if n < pages - 1:
        left = len(chosen) - (n + 1) * size
        nav.append(
            Choice("page", "next", label_key="button.page_next", label_params={"left": left})
        )
    if isinstance(query, str) and query and found:
        nav.append(Choice("page", "all", label_key="button.page_all"))
    return Page(
        chosen[n * size : (n + 1) * size],
        nav,
        query if isinstance(query, str) and query else None,
        found,
        len(chosen),
    )


def found(turn: Turn, items: Sequence[T], matches: Callable[[T, str], bool], none: str) -> bool:
    """Condition: the typed search finds something; else it is not understood (and counts so),
    with the message `none`."""
    query = normalised(turn.arg or "")
    if query and any(matches(item, query) for item in items):
        return True
    return turn.refuse(none, query=turn.arg or "")


def heading(shown: Page[T], found_key: str, none_key: str) -> list[tuple[str, dict[str, object]]]:
    """The line above a searched list: what was searched and how much it found."""
    if shown.query is None:
        return []
    key = found_key if shown.found else none_key
    return [(key, {"query": shown.query, "count": shown.total})]


def normalised(text: str) -> str:
    """For matching what was typed: full-width made ASCII (ＸＮ１２ → xn12), case folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


@STEPS.action("turn_page")
def turn_page(turn: Turn) -> None:
    saved = _current(turn)
    if turn.arg == "all":
        saved = {"state": _where(turn), "n": 0, "query": None}
    else:
        step = 1 if turn.arg == "next" else -1
        saved = {**saved, "n": max(int(str(saved.get("n", 0))) + step, 0)}
    turn.data[KEY] = saved


@STEPS.action("search_list")
def search_list(turn: Turn) -> None:
    """Typed text on a list: a search (by order or ticket number, or a product's name)."""
    query = normalised(turn.arg or "")
    turn.data[KEY] = {"state": _where(turn), "n": 0, "query": query or None}
