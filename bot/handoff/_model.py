"""The values the desk hands to its transport: who acts, what they wrote, what an action did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.calendar import WorkingCalendar
from bot.clock import Clock
from bot.config import Config
from bot.domain import Evidence
from bot.engine import Button, Engine
from bot.i18n import Catalog
from bot.store import ConversationKey, DeskCase, Store


class DeskContext(Protocol):
    """What the desk works with: no more than this (the composition root's App is one)."""

    @property
    def store(self) -> Store: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def config(self) -> Config: ...
    @property
    def calendar(self) -> WorkingCalendar: ...
    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class Agent:
    user_id: int
    name: str

    @property
    def actor(self) -> str:
        return f"agent:{self.user_id}"


@dataclass(frozen=True)
class AgentMessage:
    """Something an agent wrote in a case, as the transport holds it (to be copied on)."""

    chat_id: int
    message_id: int
    text: str | None = None  # a text message
    caption: str | None = None  # a file's caption
    captionable: bool = False  # a file that carries a caption (photo, document, video...)
    forwarded: bool = False  # forwarded from elsewhere: never addressed to the customer


@dataclass(frozen=True)
class Done:
    """What an action or relay did: `text` for the agent, the outbox recipients to deliver."""

    ok: bool
    text: str = ""
    case: DeskCase | None = None
    deliver: tuple[ConversationKey, ...] = ()
    announce: bool = False  # show `text` where the case lives, for every agent to see
    duplicate: bool = False  # the same update was handled before: nothing happened
    # what became of the agent's message: "note" (kept among the agents) or "sent" (to the customer)
    marked: str | None = None
    choices: tuple[Button, ...] = ()  # buttons to show with `text` (standard replies to pick)
    changed: bool = True  # False: only read (a list to pick from, the history): card stands


@dataclass(frozen=True)
class Supplement:
    """Material a customer added to a ticket that has a case: a note and the new files."""

    case: DeskCase
    text: str
    evidence: tuple[tuple[Evidence, str], ...]


@dataclass(frozen=True)
class Deadlines:
    """What a deadline check wrote: outbox recipients to deliver, cases whose card is due."""

    deliver: tuple[ConversationKey, ...]
    cases: tuple[DeskCase, ...]
