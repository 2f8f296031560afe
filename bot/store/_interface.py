"""The narrow store interface. The engine, the bot and the CLI see only this.

A `Store` hands out units of work; one dialogue turn (or one agent action, one import) is one unit
of work: everything written in it commits together or not at all. A second backend (PostgreSQL)
implements the same two protocols and runs the same contract tests (tests/store/).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from bot.domain import (
    CompensationEntry,
    Customer,
    Evidence,
    Order,
    RefundEntry,
    RefundState,
    Ticket,
    TicketEvent,
)


class StoreError(Exception):
    """Base of the errors the store raises for rule violations it enforces itself."""


class OpenTicketExists(StoreError):
    """The order already has an open ticket (one open ticket per order)."""


class RefundExceedsCashPaid(StoreError):
    """The refunds of an order (pending + paid) would exceed its cash paid."""


class ConcurrentUpdate(StoreError):
    """The row changed since it was read (optimistic version check failed)."""


class NotFound(StoreError):
    """The row to update does not exist."""


class StoreBusy(StoreError):
    """The database was too busy to start or finish the unit of work in time (SQLite's busy
    timeout on another connection's write lock; PostgreSQL's lock timeout or no free pooled
    connection). Nothing was written: the caller may try again a little later."""


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Who a conversation belongs to: a channel ("telegram", "console") and a user id in it."""

    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who someone is on a channel: ("telegram", "1001"). A customer may have several."""

    channel: str
    user_id: str


@dataclass(slots=True)
class Conversation:
    key: ConversationKey
    flow: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None
    customer_id: int | None = None
    version: int = 0  # 0: never saved
    updated_at: datetime | None = None
    remind_at: datetime | None = None  # when to send the one reminder for an abandoned flow


@dataclass(frozen=True, slots=True)
class DeskCase:
    """A case at the agent desk: one per ticket, or one per customer without a ticket."""

    reason: str  # why it was opened: "customer_asked", "appeal", "payout_overdue", a Reason...
    opened_at: datetime
    updated_at: datetime
    ticket_no: str | None = None
    customer_id: int | None = None
    conversation: ConversationKey | None = None  # where the customer is reached
    case_id: int | None = None  # None: never saved
    chat_id: int | None = None  # the agent chat holding its topic and card
    thread_id: int | None = None  # its forum topic; None: the group has no topics
    card_message_id: int | None = None
    card_due: bool = True  # a fresh card is to be posted
    joined_by: int | None = None  # the agent who joined the customer's current handoff
    handoff_at: datetime | None = None  # the customer's latest handoff to this case


@dataclass(frozen=True, slots=True)
class CaseEntry:
    """A line of a case's history that is no ticket event: `kind` is "note" (the agents' own,
    never sent), "to_customer" (an agent's message sent) or "from_customer" (copied in)."""

    case_id: int
    at: datetime
    actor: str  # "agent:<id>", "customer"
    kind: str
    text: str
    entry_id: int | None = None  # None: never saved


@dataclass(frozen=True, slots=True)
class Block:
    """A customer's chat the agents blocked: why, who, when."""

    conversation: ConversationKey
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rating:
    """A customer's 1-5 rating of a ticket that ended, with an optional comment."""

    ticket_no: str
    score: int
    at: datetime
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to deliver after the turn commits. `payload` is transport-neutral JSON."""

    channel: str
    recipient: str  # chat id in the channel
    payload: dict[str, Any]
    outbox_id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlbumPart:
    """One part of an album (a media group: the channel sends one update per file) waiting to be
    handed to the engine with the others as one turn, by whichever process collects it."""

    channel: str
    chat: str  # chat id in the channel
    group_id: str  # the media group: the parts of one album share it
    update_id: int  # the channel's update id: the parts' order
    dedupe_key: str  # the update's key in the exactly-once record
    payload: str  # the update as received (JSON text), parsed again when handed over
    received_at: datetime


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What reports and the finance export read of a ticket: its columns without the quote, the
    order's payment channel and the coupon the quote returns (cheap to read by the ten thousand)."""

    ticket_no: str
    order_id: str
    customer_id: int
    channel: str
    reason: str
    sub_reason: str | None
    status: str
    priority: str
    requested_fen: int
    approved_fen: int | None
    review_due: date | None
    payout_due: date | None
    appeal_count: int
    assignee: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventFacts:
    """One audit event as reports read it."""

    ticket_no: str
    at: datetime
    actor: str
    kind: str
    to_status: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """When a ticket's audit trail reached each milestone (None: never), one row per ticket."""

    ticket_no: str
    first_decision: datetime | None  # approve or reject
    last_decision: datetime | None
    last_approve: datetime | None
    first_approve: datetime | None
    paid: datetime | None  # first mark_refunded
    appealed: datetime | None  # first appeal
    fast: bool  # approved by "system" (at submission)


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What one agent ("agent:<id>") did on the tickets of a period."""

    actor: str
    cases: int  # tickets with an event of theirs
    decisions: int  # approve / reject events
    first_responses_minutes: tuple[float, ...]  # tickets whose first agent event was theirs


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is waiting now: for metrics and the report's "overdue now"."""

    outbox_pending: int
    outbox_oldest: datetime | None
    tickets_by_status: dict[str, int]
    overdue_reviews: int  # review_due before today, still undecided
    overdue_payouts: int  # payout_due before today, not yet paid


class HistoryReads(NamedTuple):
    """What the refund rules read of a customer and an order (bot.tickets.history), read at once:
    the customer's tickets (newest first) and orders (newest payment first), and the order's
    pending + paid refunds in fen."""

    tickets: list[Ticket]
    orders: list[Order]
    refunded_fen: int


class UnitOfWork(Protocol):
    """All reads and writes of one transaction. Leaving the `with` block commits; an exception
    inside it rolls everything back."""

    # customers
    def upsert_customer(self, phone: str, name: str) -> Customer: ...
    def customer(self, customer_id: int) -> Customer | None: ...
    def customer_by_phone(self, phone: str) -> Customer | None: ...
    def link_identity(self, customer_id: int, identity: Identity) -> None: ...
    def customer_by_identity(self, identity: Identity) -> Customer | None: ...
    def set_customer_locale(self, customer_id: int, locale: str | None) -> None: ...

    # orders
    def upsert_order(self, order: Order) -> None: ...
    def order(self, order_id: str) -> Order | None: ...
    def orders_of(self, customer_id: int) -> list[Order]: ...

    # tickets: numbers are allocated per Shanghai calendar day, race-free
    def next_ticket_no(self, day: date) -> str: ...
    def add_ticket(self, ticket: Ticket) -> None: ...  # OpenTicketExists
    def ticket(self, ticket_no: str) -> Ticket | None: ...
    def tickets_of_customer(self, customer_id: int) -> list[Ticket]: ...  # newest first
    def tickets_of_order(self, order_id: str) -> list[Ticket]: ...
    def open_tickets(self) -> list[Ticket]: ...
    def update_ticket(self, ticket: Ticket) -> Ticket: ...  # ConcurrentUpdate, OpenTicketExists

    # evidence and the audit trail
    def add_evidence(self, evidence: Evidence) -> Evidence: ...  # NotFound: no such ticket
    def evidence_of(self, ticket_no: str) -> list[Evidence]: ...
    def add_event(self, event: TicketEvent) -> TicketEvent: ...  # NotFound: no such ticket
    def events_of(self, ticket_no: str) -> list[TicketEvent]: ...
    # add_evidence / add_event when the id is not needed: the insert may travel with the next
    # statement whose result is read (a database that pipelines), so NotFound may come from
    # that statement or the commit instead; the unit of work then commits nothing
    def attach_evidence(self, evidence: Evidence) -> None: ...
    def record_event(self, event: TicketEvent) -> None: ...

    # refunds ledger
    def add_refund(self, entry: RefundEntry) -> bool: ...  # False: key already there
    def set_refund_state(self, idempotency_key: str, state: RefundState) -> None: ...
    def refunds_of_order(self, order_id: str) -> list[RefundEntry]: ...
    def refunded_fen(self, order_id: str) -> int: ...  # pending + paid
    # tickets_of_customer, orders_of and refunded_fen in one round trip where the database
    # pipelines
    def history_reads(self, customer_id: int, order_id: str) -> HistoryReads: ...

    # failed order-number checks per order, across accounts (the lock-out of bot/dialogue)
    def link_failures(self, order_id: str) -> tuple[int, datetime | None]: ...  # (n, locked at)
    def record_link_failure(self, order_id: str, now: datetime, limit: int) -> int: ...
    def clear_link_failures(self, order_id: str) -> None: ...

    # compensation ledger (CPL Art. 53), apart from the refunds and their cap
    def add_compensation(self, entry: CompensationEntry) -> bool: ...  # False: key already there
    def set_compensation_state(self, idempotency_key: str, state: RefundState) -> None: ...
    def compensations_of_ticket(self, ticket_no: str) -> list[CompensationEntry]: ...  # oldest 1st

    # conversations
    def conversation(self, key: ConversationKey) -> Conversation | None: ...
    # ConcurrentUpdate (stale version) / NotFound (an update of a row that is not there): from
    # the save, or from the next statement or the commit where the update travels with them;
    # either way the unit of work commits nothing
    def save_conversation(self, conversation: Conversation) -> Conversation: ...
    def conversations_due(self, now: datetime) -> list[Conversation]: ...  # remind_at <= now
    def conversations_of_customer(self, customer_id: int) -> list[Conversation]: ...  # newest first
    def conversations_in(self, flow: str, state: str) -> list[Conversation]: ...

    # the agent desk: cases, the agent-chat messages of a case, agents' names
    def add_case(self, case: DeskCase) -> DeskCase: ...  # StoreError: a second case of the same
    def update_case(self, case: DeskCase) -> DeskCase: ...  # NotFound
    def case(self, case_id: int) -> DeskCase | None: ...
    def case_of_ticket(self, ticket_no: str) -> DeskCase | None: ...
    def case_without_ticket(
        self, customer_id: int | None, conversation: ConversationKey
    ) -> DeskCase | None: ...  # by customer once linked, else by conversation
    def latest_case_of_conversation(self, conversation: ConversationKey) -> DeskCase | None: ...
    def case_in_thread(self, chat_id: int, thread_id: int) -> DeskCase | None: ...
    def case_of_message(self, chat_id: int, message_id: int) -> DeskCase | None: ...
    def cases_due(self) -> list[DeskCase]: ...  # card_due, oldest first
    def link_message(self, chat_id: int, message_id: int, case_id: int) -> None: ...
    def remember_agent(self, user_id: int, name: str) -> None: ...
    def agent_names(self) -> dict[int, str]: ...
    def add_case_entry(self, entry: CaseEntry) -> CaseEntry: ...
    def case_entries(self, case_id: int) -> list[CaseEntry]: ...  # oldest first
    def set_on_duty(self, user_id: int, name: str, on_duty: bool) -> None: ...
    # agents on duty, the one assigned longest ago (or never) first
    def agents_on_duty(self) -> list[int]: ...
    def mark_assigned(self, user_id: int, at: datetime) -> None: ...
    def block(self, block: Block) -> None: ...  # a second block replaces the first
    def unblock(self, conversation: ConversationKey) -> bool: ...  # False: was not blocked
    def blocked(self, conversation: ConversationKey) -> Block | None: ...

    # customers' ratings of ended tickets (for reports)
    def add_rating(self, rating: Rating) -> bool: ...  # False: the ticket was rated already
    def comment_rating(self, ticket_no: str, comment: str) -> None: ...  # once: the first stays
    def rating(self, ticket_no: str) -> Rating | None: ...
    def ratings_between(self, start: datetime, end: datetime) -> list[Rating]: ...  # [start, end)

    # reports (read only): tickets created in [start, end), their events and payouts, the funnel
    def ticket_facts(self, start: datetime, end: datetime) -> list[TicketFacts]: ...
    def event_facts(self, start: datetime, end: datetime) -> list[EventFacts]: ...  # by ticket
    def decision_facts(self, start: datetime, end: datetime) -> list[DecisionFacts]: ...
    def agent_facts(self, start: datetime, end: datetime) -> list[AgentFacts]: ...
    def coupons_returned_fen(self, start: datetime, end: datetime) -> int: ...
    def paid_fen(self, start: datetime, end: datetime) -> int: ...  # refunds paid
    def payouts_of_tickets(self, start: datetime, end: datetime) -> list[RefundEntry]: ...
    def record_funnel(
        self, key: ConversationKey, step: str, at: datetime, detail: str | None = None
    ) -> None: ...
    def funnel(self, start: datetime, end: datetime) -> dict[str, int]: ...  # step: people
    def handoff_reasons(self, start: datetime, end: datetime) -> dict[str, int]: ...
    def backlog(self, today: date) -> Backlog: ...

    # exactly once: False when the key was already recorded (the event had its effect)
    def mark_processed(self, dedupe_key: str, at: datetime) -> bool: ...
    # how a turn begins: the key recorded (True: the first time), then the conversation read
    # (a store may read the waiting album of the conversation's chat with them: pending_album
    # then answers from that read, until this unit of work adds or drops album parts)
    def mark_processed_and_read(
        self, dedupe_key: str, at: datetime, key: ConversationKey
    ) -> tuple[bool, Conversation | None]: ...
    def forget_processed(self, before: datetime) -> int: ...  # keys recorded before: how many

    # outbox
    def enqueue(self, message: OutboxMessage) -> OutboxMessage: ...
    def queue(self, message: OutboxMessage) -> None: ...  # enqueue, when the id is not needed
    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]: ...  # oldest first; optionally one channel / one recipient
    def mark_sent(self, outbox_id: int, at: datetime) -> None: ...
    # a recipient's first pending messages and whether its chat may still show a reply keyboard
    # (one query; False when nothing is pending), and that flag set: see Lease
    def open_recipient(
        self, limit: int, channel: str, recipient: str
    ) -> tuple[list[OutboxMessage], bool]: ...
    def set_reply_keyboard(self, channel: str, recipient: str, shown: bool) -> None: ...

    # album parts waiting to be handed over together (any process may collect a chat's album)
    # False: not stored, the part's update was handled already (a redelivery); True: it waits
    # now (a part stored twice is stored once)
    def add_album_part(self, part: AlbumPart) -> bool: ...
    def pending_album(self, channel: str, chat: str) -> str | None: ...  # group of the oldest part
    def album_parts(self, channel: str, chat: str) -> list[AlbumPart]: ...  # by update id
    # handed over: the parts are dropped and their dedupe keys recorded as processed; how many
    # of them were still there (fewer: another worker handed some over meanwhile)
    def drop_album_parts(self, channel: str, update_ids: Sequence[int], at: datetime) -> int: ...
    # chats whose latest part was received before `before` (the worker collecting it may be gone)
    def idle_albums(self, channel: str, before: datetime) -> list[str]: ...

    # locks across processes, held until the unit of work ends (nothing to take on SQLite, whose
    # one writer at a time already serialises units of work; advisory locks on PostgreSQL)
    # held from the unit of work's next statement on (PostgreSQL sends it with that one) to its
    # end; that statement waits while another process holds the chat
    def lock_chat(self, channel: str, chat_id: str) -> None: ...
    def try_lock_recipient(self, channel: str, recipient: str) -> bool: ...  # False: held


class Lease(Protocol):
    """Held by one process at a time (see Store.lease): a recipient's outbox while one worker
    delivers it, a job's tick, the one polling consumer. Its reads and delivery records run
    outside of any unit of work; a record is committed with the lease's next read, or before the
    lease is let go at the latest."""

    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]: ...
    def record_sent(self, outbox_id: int, at: datetime) -> None: ...  # durable before release
    # a recipient's first pending messages and, read with them in the same query, whether the
    # recipient's chat may still show a reply keyboard (False when nothing is pending)
    def open_recipient(
        self, limit: int, channel: str, recipient: str
    ) -> tuple[list[OutboxMessage], bool]: ...
    def set_reply_keyboard(self, channel: str, recipient: str, shown: bool) -> None: ...


class OpenedRecipient(NamedTuple):
    """A recipient's outbox lease as it is taken: the lease, the first pending messages, and
    whether the recipient's chat may still show a reply keyboard (see Lease.open_recipient)."""

    lease: Lease
    pending: list[OutboxMessage]
    reply_keyboard: bool


class Store(Protocol):
    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...

    # One holder at a time across every process on the database, held until the block ends (or
    # the process dies): None when another process holds `name` now. Not a unit of work: it may
    # be held across awaits, and it is independent of the turns' transactions.
    def lease(self, name: str) -> AbstractContextManager[Lease | None]: ...
    # The lease `outbox:{channel}:{recipient}` taken and the recipient's first `limit` pending
    # messages read with it (one round trip on PostgreSQL; read after the lease is held); None
    # when another process holds it.
    def recipient_lease(
        self, channel: str, recipient: str, limit: int
    ) -> AbstractContextManager[OpenedRecipient | None]: ...
    def close(self) -> None: ...  # records what mark_sent_soon still holds first

    # Delivery records without a transaction of their own: a delivered message is marked sent by
    # the next unit of work this store opens (the next turn, usually), or by `flush`. Every unit
    # of work of this store sees them at once; another process sees them after that commit, and a
    # crash before it sends those messages again at the next start (delivery is at least once).
    def mark_sent_soon(self, outbox_ids: Sequence[int], at: datetime) -> None: ...
    def flush(self) -> None: ...  # write what mark_sent_soon holds now
