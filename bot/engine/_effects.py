"""What a turn did besides its messages, as typed values: adapters and the desk act on them by
type (`match` / `isinstance`), and mypy checks every consumer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HandoffRequested:
    """The customer asked for a person (or appealed, or took an offered person)."""

    customer_id: int | None
    ticket_no: str | None
    reason: str
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class HandoffEnded:
    """The chat went back to the bot."""

    customer_id: int | None


@dataclass(frozen=True, slots=True)
class RelayedToAgent:
    """While a person has the chat, the customer wrote this: the desk copies it in."""

    text: str
    file_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentOffered:
    """The bot offered a person: after repeated misunderstandings, or for an overdue payout."""

    ticket_no: str | None = None
    misses: int | None = None


@dataclass(frozen=True, slots=True)
class TicketSubmitted:
    ticket_no: str
    status: str


@dataclass(frozen=True, slots=True)
class TicketSupplemented:
    """The customer sent the material an agent asked for: the ticket is back in review."""

    ticket_no: str
    status: str


@dataclass(frozen=True, slots=True)
class TicketAppealed:
    ticket_no: str
    status: str


@dataclass(frozen=True, slots=True)
class ReminderScheduled:
    at: datetime


Effect = (
    HandoffRequested
    | HandoffEnded
    | RelayedToAgent
    | AgentOffered
    | TicketSubmitted
    | TicketSupplemented
    | TicketAppealed
    | ReminderScheduled
)
