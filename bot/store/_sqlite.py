"""The SQLite store: one WAL file, one connection per store, one transaction per unit of work.

Conventions (the PostgreSQL backend must follow the same ones; tests/store/ checks them):

* Versions (optimistic locking). A ticket or conversation carries the version it was read at.
  `update_ticket(t)` writes where the stored version equals `t.version`, stores `t.version + 1`
  and returns the ticket with that version; a mismatch raises ConcurrentUpdate, a missing row
  NotFound. `add_ticket` stores the ticket's version as given (the model's default is 1).
  `save_conversation(c)` inserts when `c.version == 0` (ConcurrentUpdate if the key exists) and
  otherwise updates where the stored version equals `c.version`; it returns a copy with
  `version + 1` (the input object is not changed).
* Times. Moments are stored as UTC ISO-8601 text with microseconds ('2026-11-24T02:03:04.000000Z'),
  so text order is time order; they come back timezone-aware in UTC. Naive datetimes are refused
  (ValueError). Dates are 'YYYY-MM-DD'. The store stamps the time itself only where the caller
  left it empty (a conversation's `updated_at`, an outbox message's `created_at`), from the clock
  given to `SqliteStore.open`.
* Ids. Evidence, events and outbox messages get their ids from the store: pass them with id None
  and use the returned copy.
* Transactions. Every unit of work is a `BEGIN IMMEDIATE` transaction: it takes the write lock up
  front, so two writers queue on `busy_timeout` instead of one failing when it upgrades a read
  lock. A ticket number allocated in a unit of work that rolls back is handed out again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from bot.clock import Clock, SystemClock
from bot.domain import (
    OPEN_STATUSES,
    Category,
    CompensationEntry,
    CompensationKind,
    Customer,
    Evidence,
    EvidenceKind,
    MerchantStatus,
    Order,
    PaymentChannel,
    Priority,
    Quote,
    Reason,
    RefundEntry,
    RefundState,
    SubReason,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.store._interface import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DeskCase,
    Identity,
    NotFound,
    OpenTicketExists,
    OutboxMessage,
    RefundExceedsCashPaid,
    StoreError,
    UnitOfWork,
)
from bot.store._migrations import load_migrations, migrate, schema_version

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS: Final = 5000
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_MEMORY = ":memory:"

# --- values to and from SQLite -------------------------------------------------------------------


def _ts(moment: datetime) -> str:
    # `fold` in the key: two local times an hour apart in a DST overlap compare equal
    return _ts_text(moment, moment.fold)


@lru_cache(maxsize=64)  # a turn stamps the same few moments several times
def _ts_text(moment: datetime, fold: int) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime where an aware one is required: {moment!r}")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _ts_opt(moment: datetime | None) -> str | None:
    return None if moment is None else _ts(moment)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)  # 'Z' parses to timezone.utc since Python 3.11


def _dt_opt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _day_opt(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _date_opt(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _phone(phone: str) -> str:
    if _E164.fullmatch(phone) is None:
        raise ValueError(f"phone must be E.164 (e.g. +8613800138000), got {phone!r}")
    return phone


def _integrity(exc: sqlite3.IntegrityError) -> StoreError:
    """Translate what the schema enforces into the interface's errors."""
    message = str(exc)
    if "refund_exceeds_cash_paid" in message:
        return RefundExceedsCashPaid(
            "the order's pending + paid refunds would exceed its cash paid"
        )
    # Exactly this text: a duplicate ticket number may report "tickets.ticket_no, tickets.order_id"
    # (the composite key), which is a caller bug, not a second open ticket.
    if message == "UNIQUE constraint failed: tickets.order_id":
        return OpenTicketExists("the order already has an open ticket")
    if "FOREIGN KEY" in message:
        return NotFound("a referenced row (customer, order or ticket) does not exist")
    return StoreError(message)


# --- SQL ---------------------------------------------------------------------------------------

_OPEN_IN: Final = ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATUSES))

_CUSTOMER_COLS: Final = "customer_id, phone, name, locale"

_ORDER_COLS: Final = (
    "order_id, phone, customer_name, product_name, category, list_price_fen, cash_paid_fen,"
    " coupon_fen, coupon_refundable, paid_at, service_start, service_end, activated_at,"
    " activation_exclusion_confirmed, used_days, payment_channel, seven_day_supported,"
    " merchant_status"
)
_UPSERT_ORDER: Final = (
    f"INSERT INTO orders ({_ORDER_COLS}) VALUES ({', '.join('?' * 18)})"
    " ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _ORDER_COLS.split(",")[1:])
)

_TICKET_COLS: Final = (
    "ticket_no, order_id, customer_id, reason, sub_reason, status, priority, requested_fen,"
    " approved_fen, quote, review_due, payout_due, appeal_count, assignee, created_at, updated_at,"
    " version"
)
_SELECT_TICKETS: Final = f"SELECT {_TICKET_COLS} FROM tickets"
# The identity of a ticket (number, order, customer, creation) is in the WHERE clause rather than
# the SET list: a caller that changed it gets an error instead of a silent partial write.
_UPDATE_TICKET: Final = (
    "UPDATE tickets SET reason = ?, sub_reason = ?, status = ?, priority = ?, requested_fen = ?,"
    " approved_fen = ?, quote = ?, review_due = ?, payout_due = ?, appeal_count = ?, assignee = ?,"
    " updated_at = ?, version = version + 1"
    " WHERE ticket_no = ? AND version = ? AND order_id = ? AND customer_id = ? AND created_at = ?"
)
_PRIORITY_RANK: Final = (
    f"CASE priority WHEN '{Priority.HIGH.value}' THEN 0 WHEN '{Priority.FAST.value}' THEN 1"
    " ELSE 2 END"
)

_EVIDENCE_COLS: Final = (
    "evidence_id, ticket_no, kind, file_id, file_unique_id, size_bytes, mime_type, caption, sha256,"
    " added_at"
)
_EVENT_COLS: Final = "event_id, ticket_no, at, actor, kind, from_status, to_status, data"
_REFUND_COLS: Final = "idempotency_key, ticket_no, order_id, amount_fen, channel, state, created_at"
_COMPENSATION_COLS: Final = (
    "idempotency_key, ticket_no, order_id, kind, amount_fen, channel, state, actor, created_at"
)
_COUNTED: Final = f"('{RefundState.PENDING.value}', '{RefundState.PAID.value}')"

_CONVERSATION_COLS: Final = (
    "channel, user_id, flow, state, data, locale, customer_id, version, updated_at, remind_at"
)
_OUTBOX_COLS: Final = "outbox_id, channel, recipient, payload, created_at"
_CASE_COLS: Final = (
    "case_id, ticket_no, customer_id, channel, user_id, reason, chat_id, thread_id,"
    " card_message_id, card_due, joined_by, handoff_at, opened_at, updated_at"
)
_SELECT_CASES: Final = f"SELECT {_CASE_COLS} FROM desk_cases"


def _customer(row: sqlite3.Row) -> Customer:
    return Customer(customer_id=row[0], phone=row[1], name=row[2], locale=row[3])


def _order_params(o: Order) -> tuple[object, ...]:
    return (
        o.order_id,
        o.phone,
        o.customer_name,
        o.product_name,
        o.category.value,
        o.list_price_fen,
        o.cash_paid_fen,
        o.coupon_fen,
        int(o.coupon_refundable),
        _ts(o.paid_at),
        _ts(o.service_start),
        _ts(o.service_end),
        _ts_opt(o.activated_at),
        int(o.activation_exclusion_confirmed),
        o.used_days,
        o.payment_channel.value,
        int(o.seven_day_supported),
        o.merchant_status.value,
    )


def _order(row: sqlite3.Row) -> Order:
    return Order(
        order_id=row[0],
        phone=row[1],
        customer_name=row[2],
        product_name=row[3],
        category=Category(row[4]),
        list_price_fen=row[5],
        cash_paid_fen=row[6],
        coupon_fen=row[7],
        coupon_refundable=bool(row[8]),
        paid_at=_dt(row[9]),
        service_start=_dt(row[10]),
        service_end=_dt(row[11]),
        activated_at=_dt_opt(row[12]),
        activation_exclusion_confirmed=bool(row[13]),
        used_days=row[14],
        payment_channel=PaymentChannel(row[15]),
        seven_day_supported=bool(row[16]),
        merchant_status=MerchantStatus(row[17]),
    )


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        ticket_no=row[0],
        order_id=row[1],
        customer_id=row[2],
        reason=Reason(row[3]),
        sub_reason=None if row[4] is None else SubReason(row[4]),
        status=TicketStatus(row[5]),
        priority=Priority(row[6]),
        requested_fen=row[7],
        approved_fen=row[8],
        quote=Quote.model_validate_json(row[9]),
        review_due=_date_opt(row[10]),
        payout_due=_date_opt(row[11]),
        appeal_count=row[12],
        assignee=row[13],
        created_at=_dt(row[14]),
        updated_at=_dt(row[15]),
        version=row[16],
    )


def _evidence(row: sqlite3.Row) -> Evidence:
    return Evidence(
        evidence_id=row[0],
        ticket_no=row[1],
        kind=EvidenceKind(row[2]),
        file_id=row[3],
        file_unique_id=row[4],
        size_bytes=row[5],
        mime_type=row[6],
        caption=row[7],
        sha256=row[8],
        added_at=_dt(row[9]),
    )


def _event(row: sqlite3.Row) -> TicketEvent:
    return TicketEvent(
        event_id=row[0],
        ticket_no=row[1],
        at=_dt(row[2]),
        actor=row[3],
        kind=row[4],
        from_status=None if row[5] is None else TicketStatus(row[5]),
        to_status=None if row[6] is None else TicketStatus(row[6]),
        data=json.loads(row[7]),
    )


def _refund(row: sqlite3.Row) -> RefundEntry:
    return RefundEntry(
        idempotency_key=row[0],
        ticket_no=row[1],
        order_id=row[2],
        amount_fen=row[3],
        channel=PaymentChannel(row[4]),
        state=RefundState(row[5]),
        created_at=_dt(row[6]),
    )


def _conversation(row: sqlite3.Row, key: ConversationKey | None = None) -> Conversation:
    return Conversation(
        key=key or ConversationKey(channel=row[0], user_id=row[1]),
        flow=row[2],
        state=row[3],
        data=json.loads(row[4]),
        locale=row[5],
        customer_id=row[6],
        version=row[7],
        updated_at=_dt(row[8]),
        remind_at=_dt_opt(row[9]),
    )


def _case(row: sqlite3.Row) -> DeskCase:
    return DeskCase(
        case_id=row[0],
        ticket_no=row[1],
        customer_id=row[2],
        conversation=None if row[3] is None else ConversationKey(row[3], row[4]),
        reason=row[5],
        chat_id=row[6],
        thread_id=row[7],
        card_message_id=row[8],
        card_due=bool(row[9]),
        joined_by=row[10],
        handoff_at=_dt_opt(row[11]),
        opened_at=_dt(row[12]),
        updated_at=_dt(row[13]),
    )


def _case_params(c: DeskCase) -> tuple[object, ...]:
    """The columns after case_id, in _CASE_COLS order."""
    key = c.conversation
    return (
        c.ticket_no,
        c.customer_id,
        None if key is None else key.channel,
        None if key is None else key.user_id,
        c.reason,
        c.chat_id,
        c.thread_id,
        c.card_message_id,
        int(c.card_due),
        c.joined_by,
        _ts_opt(c.handoff_at),
        _ts(c.opened_at),
        _ts(c.updated_at),
    )


def _outbox(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        outbox_id=row[0],
        channel=row[1],
        recipient=row[2],
        payload=json.loads(row[3]),
        created_at=_dt(row[4]),
    )


# --- the unit of work ----------------------------------------------------------------------------


class SqliteUnitOfWork:
    """All reads and writes of one SQLite transaction; valid only inside its `with` block."""

    __slots__ = ("_active", "_clock", "_conn", "_sent")

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._active = True
        self._sent: list[tuple[int, str]] = []  # the store's mark_sent_soon records it carries

    def _run(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        if not self._active:
            # The connection is shared: a stale handle would write into someone else's transaction.
            raise RuntimeError("this unit of work has ended; open a new one")
        return self._conn.execute(sql, params)

    def _write(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        try:
            return self._run(sql, params)
        except sqlite3.IntegrityError as exc:
            raise _integrity(exc) from exc

    # customers

    def upsert_customer(self, phone: str, name: str) -> Customer:
        """The customer with this phone, created if new; an existing one takes the new name."""
        row = self._write(
            "INSERT INTO customers (phone, name) VALUES (?, ?)"
            " ON CONFLICT (phone) DO UPDATE SET name = excluded.name"
            f" RETURNING {_CUSTOMER_COLS}",
            (_phone(phone), name),
        ).fetchall()[0]  # fetchall: a RETURNING statement must run to its end before COMMIT
        return _customer(row)

    def customer(self, customer_id: int) -> Customer | None:
        """The customer with this id, if any."""
        row = self._run(
            f"SELECT {_CUSTOMER_COLS} FROM customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return None if row is None else _customer(row)

    def customer_by_phone(self, phone: str) -> Customer | None:
        """The customer with this E.164 phone, if any."""
        row = self._run(
            f"SELECT {_CUSTOMER_COLS} FROM customers WHERE phone = ?", (phone,)
        ).fetchone()
        return None if row is None else _customer(row)

    def link_identity(self, customer_id: int, identity: Identity) -> None:
        """Link an identity to a customer (re-linking moves the identity)."""
        self._write(
            "INSERT INTO customer_identities (channel, user_id, customer_id) VALUES (?, ?, ?)"
            " ON CONFLICT (channel, user_id) DO UPDATE SET customer_id = excluded.customer_id",
            (identity.channel, identity.user_id, customer_id),
        )

    def customer_by_identity(self, identity: Identity) -> Customer | None:
        """The customer this identity is linked to, if any."""
        row = self._run(
            "SELECT c.customer_id, c.phone, c.name, c.locale FROM customer_identities i"
            " JOIN customers c ON c.customer_id = i.customer_id"
            " WHERE i.channel = ? AND i.user_id = ?",
            (identity.channel, identity.user_id),
        ).fetchone()
        return None if row is None else _customer(row)

    def set_customer_locale(self, customer_id: int, locale: str | None) -> None:
        """Remember the customer's language (None: the default)."""
        cur = self._run(
            "UPDATE customers SET locale = ? WHERE customer_id = ?", (locale, customer_id)
        )
        if cur.rowcount == 0:
            raise NotFound(f"no customer {customer_id}")

    # orders

    def upsert_order(self, order: Order) -> None:
        """Insert or replace an order by id, creating or renaming the customer of its phone."""
        self.upsert_customer(order.phone, order.customer_name)
        self._write(_UPSERT_ORDER, _order_params(order))

    def order(self, order_id: str) -> Order | None:
        """The order with this id, if any."""
        row = self._run(
            f"SELECT {_ORDER_COLS} FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else _order(row)

    def orders_of(self, customer_id: int) -> list[Order]:
        """The customer's orders (matched by phone), newest payment first."""
        rows = self._run(
            f"SELECT {_ORDER_COLS} FROM orders WHERE phone ="
            " (SELECT phone FROM customers WHERE customer_id = ?)"
            " ORDER BY paid_at DESC, order_id",
            (customer_id,),
        ).fetchall()
        return [_order(r) for r in rows]

    # tickets

    def next_ticket_no(self, day: date) -> str:
        """Allocate the next ticket number of `day`: T{YYYYMMDD}-{NNNN}."""
        # One statement, under the transaction's write lock: no two transactions see the same value.
        row = self._run(
            "INSERT INTO ticket_counters (day, last_no) VALUES (?, 1)"
            " ON CONFLICT (day) DO UPDATE SET last_no = last_no + 1 RETURNING last_no",
            (day.isoformat(),),
        ).fetchall()[0]
        return f"T{day:%Y%m%d}-{row[0]:04d}"

    def add_ticket(self, ticket: Ticket) -> None:
        """Store a new ticket; OpenTicketExists if its order has an open one already."""
        self._write(
            f"INSERT INTO tickets ({_TICKET_COLS}) VALUES ({', '.join('?' * 17)})",
            (
                ticket.ticket_no,
                ticket.order_id,
                ticket.customer_id,
                ticket.reason.value,
                None if ticket.sub_reason is None else ticket.sub_reason.value,
                ticket.status.value,
                ticket.priority.value,
                ticket.requested_fen,
                ticket.approved_fen,
                ticket.quote.model_dump_json(),
                _day_opt(ticket.review_due),
                _day_opt(ticket.payout_due),
                ticket.appeal_count,
                ticket.assignee,
                _ts(ticket.created_at),
                _ts(ticket.updated_at),
                ticket.version,
            ),
        )

    def ticket(self, ticket_no: str) -> Ticket | None:
        """The ticket with this number, if any."""
        row = self._run(f"{_SELECT_TICKETS} WHERE ticket_no = ?", (ticket_no,)).fetchone()
        return None if row is None else _ticket(row)

    def tickets_of_customer(self, customer_id: int) -> list[Ticket]:
        """The customer's tickets, newest first."""
        rows = self._run(
            f"{_SELECT_TICKETS} WHERE customer_id = ? ORDER BY created_at DESC, ticket_no DESC",
            (customer_id,),
        ).fetchall()
        return [_ticket(r) for r in rows]

    def tickets_of_order(self, order_id: str) -> list[Ticket]:
        """The order's tickets, newest first."""
        rows = self._run(
            f"{_SELECT_TICKETS} WHERE order_id = ? ORDER BY created_at DESC, ticket_no DESC",
            (order_id,),
        ).fetchall()
        return [_ticket(r) for r in rows]

    def open_tickets(self) -> list[Ticket]:
        """Open tickets for the agent queue: by priority (high, fast, normal), review due, age."""
        rows = self._run(
            f"{_SELECT_TICKETS} WHERE status IN ({_OPEN_IN})"
            f" ORDER BY {_PRIORITY_RANK}, review_due IS NULL, review_due, created_at, ticket_no"
        ).fetchall()
        return [_ticket(r) for r in rows]

    def update_ticket(self, ticket: Ticket) -> Ticket:
        """Write a ticket read at version n (changes applied); return it at version n + 1."""
        cur = self._write(
            _UPDATE_TICKET,
            (
                ticket.reason.value,
                None if ticket.sub_reason is None else ticket.sub_reason.value,
                ticket.status.value,
                ticket.priority.value,
                ticket.requested_fen,
                ticket.approved_fen,
                ticket.quote.model_dump_json(),
                _day_opt(ticket.review_due),
                _day_opt(ticket.payout_due),
                ticket.appeal_count,
                ticket.assignee,
                _ts(ticket.updated_at),
                ticket.ticket_no,
                ticket.version,
                ticket.order_id,
                ticket.customer_id,
                _ts(ticket.created_at),
            ),
        )
        if cur.rowcount == 1:
            return ticket.model_copy(update={"version": ticket.version + 1})
        stored = self._run(
            "SELECT version FROM tickets WHERE ticket_no = ?", (ticket.ticket_no,)
        ).fetchone()
        if stored is None:
            raise NotFound(f"no ticket {ticket.ticket_no}")
        if stored[0] != ticket.version:
            raise ConcurrentUpdate(
                f"ticket {ticket.ticket_no} is at version {stored[0]}, not {ticket.version}"
            )
        raise ValueError(
            f"ticket {ticket.ticket_no}: order_id, customer_id and created_at cannot change"
        )

    # evidence and the audit trail

    def add_evidence(self, evidence: Evidence) -> Evidence:
        """Store a piece of evidence; return it with its new evidence_id."""
        if evidence.evidence_id is not None:
            raise ValueError("evidence already has an id; the store assigns it")
        row = self._write(
            f"INSERT INTO evidence ({_EVIDENCE_COLS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING evidence_id",
            (
                evidence.ticket_no,
                evidence.kind.value,
                evidence.file_id,
                evidence.file_unique_id,
                evidence.size_bytes,
                evidence.mime_type,
                evidence.caption,
                evidence.sha256,
                _ts(evidence.added_at),
            ),
        ).fetchall()[0]
        return evidence.model_copy(update={"evidence_id": row[0]})

    def evidence_of(self, ticket_no: str) -> list[Evidence]:
        """The ticket's evidence in the order it was added."""
        rows = self._run(
            f"SELECT {_EVIDENCE_COLS} FROM evidence WHERE ticket_no = ? ORDER BY evidence_id",
            (ticket_no,),
        ).fetchall()
        return [_evidence(r) for r in rows]

    def add_event(self, event: TicketEvent) -> TicketEvent:
        """Append an event to a ticket's audit trail; return it with its new event_id."""
        if event.event_id is not None:
            raise ValueError("event already has an id; the store assigns it")
        row = self._write(
            f"INSERT INTO ticket_events ({_EVENT_COLS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING event_id",
            (
                event.ticket_no,
                _ts(event.at),
                event.actor,
                event.kind,
                None if event.from_status is None else event.from_status.value,
                None if event.to_status is None else event.to_status.value,
                _json(event.data),
            ),
        ).fetchall()[0]
        return event.model_copy(update={"event_id": row[0]})

    def events_of(self, ticket_no: str) -> list[TicketEvent]:
        """The ticket's audit trail, oldest first."""
        rows = self._run(
            f"SELECT {_EVENT_COLS} FROM ticket_events WHERE ticket_no = ? ORDER BY at, event_id",
            (ticket_no,),
        ).fetchall()
        return [_event(r) for r in rows]

    # refunds ledger

    def add_refund(self, entry: RefundEntry) -> bool:
        """Record a payout; False (nothing written) when its idempotency key is already there."""
        cur = self._write(
            f"INSERT INTO refunds ({_REFUND_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (
                entry.idempotency_key,
                entry.ticket_no,
                entry.order_id,
                entry.amount_fen,
                entry.channel.value,
                entry.state.value,
                _ts(entry.created_at),
            ),
        )
        return cur.rowcount == 1

    def set_refund_state(self, idempotency_key: str, state: RefundState) -> None:
        """Move a payout to pending, paid or failed; the cash-paid cap still holds."""
        cur = self._write(
            "UPDATE refunds SET state = ? WHERE idempotency_key = ?",
            (state.value, idempotency_key),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no refund with idempotency key {idempotency_key!r}")

    def refunds_of_order(self, order_id: str) -> list[RefundEntry]:
        """The order's payouts, oldest first, in every state."""
        rows = self._run(
            f"SELECT {_REFUND_COLS} FROM refunds WHERE order_id = ?"
            " ORDER BY created_at, idempotency_key",
            (order_id,),
        ).fetchall()
        return [_refund(r) for r in rows]

    def refunded_fen(self, order_id: str) -> int:
        """The order's pending + paid refunds in fen (failed ones do not count)."""
        row = self._run(
            "SELECT coalesce(sum(amount_fen), 0) FROM refunds"
            f" WHERE order_id = ? AND state IN {_COUNTED}",
            (order_id,),
        ).fetchone()
        return int(row[0])

    # compensation ledger (migration 0005): CPL Art. 53 payouts apart from the refunds' cap

    def add_compensation(self, entry: CompensationEntry) -> bool:
        """Record a compensation payout; False (nothing written) when its key is already there."""
        cur = self._write(
            f"INSERT INTO compensations ({_COMPENSATION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (
                entry.idempotency_key,
                entry.ticket_no,
                entry.order_id,
                entry.kind.value,
                entry.amount_fen,
                entry.channel.value,
                entry.state.value,
                entry.actor,
                _ts(entry.created_at),
            ),
        )
        return cur.rowcount == 1

    def set_compensation_state(self, idempotency_key: str, state: RefundState) -> None:
        """Move a compensation payout to pending, paid or failed."""
        cur = self._write(
            "UPDATE compensations SET state = ? WHERE idempotency_key = ?",
            (state.value, idempotency_key),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no compensation with idempotency key {idempotency_key!r}")

    def compensations_of_ticket(self, ticket_no: str) -> list[CompensationEntry]:
        """The ticket's compensation payouts, oldest first, in every state."""
        rows = self._run(
            f"SELECT {_COMPENSATION_COLS} FROM compensations WHERE ticket_no = ?"
            " ORDER BY created_at, idempotency_key",
            (ticket_no,),
        ).fetchall()
        return [
            CompensationEntry(
                idempotency_key=r[0],
                ticket_no=r[1],
                order_id=r[2],
                kind=CompensationKind(r[3]),
                amount_fen=r[4],
                channel=PaymentChannel(r[5]),
                state=RefundState(r[6]),
                actor=r[7],
                created_at=_dt(r[8]),
            )
            for r in rows
        ]

    # conversations

    def conversation(self, key: ConversationKey) -> Conversation | None:
        """The stored conversation of this channel and user, if any."""
        row = self._run(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE channel = ? AND user_id = ?",
            (key.channel, key.user_id),
        ).fetchone()
        return None if row is None else _conversation(row, key)

    def save_conversation(self, conversation: Conversation) -> Conversation:
        """Insert (version 0) or update (version n) a conversation; return it at version n + 1."""
        c = conversation
        updated_at = c.updated_at if c.updated_at is not None else self._clock.now()
        values = (
            c.flow,
            c.state,
            _json(c.data),
            c.locale,
            c.customer_id,
            _ts(updated_at),
            _ts_opt(c.remind_at),
            c.key.channel,
            c.key.user_id,
        )
        if c.version == 0:
            cur = self._write(
                "INSERT INTO conversations (flow, state, data, locale, customer_id, updated_at,"
                " remind_at, channel, user_id, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (channel, user_id) DO NOTHING",
                values,
            )
            if cur.rowcount == 0:
                raise ConcurrentUpdate(f"conversation {c.key} was created meanwhile")
        else:
            cur = self._write(
                "UPDATE conversations SET flow = ?, state = ?, data = ?, locale = ?,"
                " customer_id = ?, updated_at = ?, remind_at = ?, version = version + 1"
                " WHERE channel = ? AND user_id = ? AND version = ?",
                (*values, c.version),
            )
            if cur.rowcount == 0:
                if self.conversation(c.key) is None:
                    raise NotFound(f"no conversation {c.key}")
                raise ConcurrentUpdate(f"conversation {c.key} changed since version {c.version}")
        # built directly: dataclasses.replace costs several times more, on every turn
        return Conversation(
            key=c.key,
            flow=c.flow,
            state=c.state,
            data=c.data,
            locale=c.locale,
            customer_id=c.customer_id,
            version=c.version + 1,
            updated_at=updated_at,
            remind_at=c.remind_at,
        )

    def conversations_due(self, now: datetime) -> list[Conversation]:
        """Conversations whose reminder is due (remind_at <= now), earliest first."""
        rows = self._run(
            f"SELECT {_CONVERSATION_COLS} FROM conversations"
            " WHERE remind_at IS NOT NULL AND remind_at <= ? ORDER BY remind_at, channel, user_id",
            (_ts(now),),
        ).fetchall()
        return [_conversation(r) for r in rows]

    def conversations_of_customer(self, customer_id: int) -> list[Conversation]:
        """The customer's conversations (any channel), the most recently active first."""
        rows = self._run(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE customer_id = ?"
            " ORDER BY updated_at DESC, channel, user_id",
            (customer_id,),
        ).fetchall()
        return [_conversation(r) for r in rows]

    def conversations_in(self, flow: str, state: str) -> list[Conversation]:
        """The conversations standing in one state (e.g. with a person), oldest change first."""
        rows = self._run(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE flow = ? AND state = ?"
            " ORDER BY updated_at, channel, user_id",
            (flow, state),
        ).fetchall()
        return [_conversation(r) for r in rows]

    # the agent desk

    def add_case(self, case: DeskCase) -> DeskCase:
        """Store a new case; return it with its id (StoreError: its ticket or customer has one)."""
        if case.case_id is not None:
            raise ValueError("case already has an id; the store assigns it")
        row = self._write(
            f"INSERT INTO desk_cases ({_CASE_COLS}) VALUES (NULL, {', '.join('?' * 13)})"
            " RETURNING case_id",
            _case_params(case),
        ).fetchall()[0]
        return dataclasses.replace(case, case_id=row[0])

    def update_case(self, case: DeskCase) -> DeskCase:
        """Write every field of a stored case; NotFound if it does not exist."""
        columns = [c.strip() for c in _CASE_COLS.split(",")[1:]]
        cur = self._write(
            f"UPDATE desk_cases SET {', '.join(f'{c} = ?' for c in columns)} WHERE case_id = ?",
            (*_case_params(case), case.case_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no case {case.case_id}")
        return case

    def _one_case(self, where: str, params: Sequence[object]) -> DeskCase | None:
        row = self._run(f"{_SELECT_CASES} WHERE {where} LIMIT 1", params).fetchone()
        return None if row is None else _case(row)

    def case(self, case_id: int) -> DeskCase | None:
        """The case with this id, if any."""
        return self._one_case("case_id = ?", (case_id,))

    def case_of_ticket(self, ticket_no: str) -> DeskCase | None:
        """The case of a ticket, if it has one."""
        return self._one_case("ticket_no = ?", (ticket_no,))

    def case_without_ticket(
        self, customer_id: int | None, conversation: ConversationKey
    ) -> DeskCase | None:
        """The ticketless case of a linked customer, or of an unlinked conversation."""
        if customer_id is not None:
            return self._one_case("ticket_no IS NULL AND customer_id = ?", (customer_id,))
        return self._one_case(
            "ticket_no IS NULL AND customer_id IS NULL AND channel = ? AND user_id = ?",
            (conversation.channel, conversation.user_id),
        )

    def latest_case_of_conversation(self, conversation: ConversationKey) -> DeskCase | None:
        """The case the conversation was last handed off to (the one its messages go to)."""
        return self._one_case(
            "channel = ? AND user_id = ? AND handoff_at IS NOT NULL"
            " ORDER BY handoff_at DESC, case_id DESC",
            (conversation.channel, conversation.user_id),
        )

    def case_in_thread(self, chat_id: int, thread_id: int) -> DeskCase | None:
        """The case whose forum topic this is."""
        return self._one_case(
            "chat_id = ? AND thread_id = ? ORDER BY case_id DESC", (chat_id, thread_id)
        )

    def case_of_message(self, chat_id: int, message_id: int) -> DeskCase | None:
        """The case an agent-chat message belongs to (see link_message)."""
        return self._one_case(
            "case_id = (SELECT case_id FROM desk_messages WHERE chat_id = ? AND message_id = ?)",
            (chat_id, message_id),
        )

    def cases_due(self) -> list[DeskCase]:
        """Cases whose card is still to be posted, oldest first."""
        rows = self._run(f"{_SELECT_CASES} WHERE card_due = 1 ORDER BY case_id").fetchall()
        return [_case(r) for r in rows]

    def link_message(self, chat_id: int, message_id: int, case_id: int) -> None:
        """Record that an agent-chat message belongs to a case (again: the newest case wins)."""
        self._write(
            "INSERT INTO desk_messages (chat_id, message_id, case_id) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id, message_id) DO UPDATE SET case_id = excluded.case_id",
            (chat_id, message_id, case_id),
        )

    def remember_agent(self, user_id: int, name: str) -> None:
        """Remember an agent's display name (the newest one wins)."""
        self._write(
            "INSERT INTO desk_agents (user_id, name) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name",
            (user_id, name),
        )

    def agent_names(self) -> dict[int, str]:
        """Every agent's remembered display name by user id."""
        rows = self._run("SELECT user_id, name FROM desk_agents").fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    # exactly once

    def mark_processed(self, dedupe_key: str, at: datetime) -> bool:
        """Record an update/event key; True the first time, False when already recorded."""
        cur = self._run(
            "INSERT INTO processed_updates (dedupe_key, at) VALUES (?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            (dedupe_key, _ts(at)),
        )
        return cur.rowcount == 1

    def forget_processed(self, before: datetime) -> int:
        """Drop the keys recorded before `before` (a scan: see migration 0003); how many."""
        cur = self._run("DELETE FROM processed_updates WHERE at < ?", (_ts(before),))
        return cur.rowcount

    # outbox

    def enqueue(self, message: OutboxMessage) -> OutboxMessage:
        """Queue a message for delivery after commit; return it with its id and creation time."""
        if message.outbox_id is not None:
            raise ValueError("message already has an id; the store assigns it")
        created_at = message.created_at if message.created_at is not None else self._clock.now()
        row = self._run(
            "INSERT INTO outbox (channel, recipient, payload, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING outbox_id",
            (message.channel, message.recipient, _json(message.payload), _ts(created_at)),
        ).fetchall()[0]
        return OutboxMessage(  # built directly, as in save_conversation
            channel=message.channel,
            recipient=message.recipient,
            payload=message.payload,
            outbox_id=row[0],
            created_at=created_at,
        )

    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]:
        """Unsent messages, oldest first, at most `limit`; only `channel` / `recipient` if given."""
        # a NULL filter matches every row, so one statement serves all four combinations
        rows = self._run(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE sent_at IS NULL"
            " AND (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR recipient = ?2)"
            " ORDER BY created_at, outbox_id LIMIT ?3",
            (channel, recipient, limit),
        ).fetchall()
        return [_outbox(r) for r in rows]

    def mark_sent(self, outbox_id: int, at: datetime) -> None:
        """Mark a message delivered; a second call keeps the first delivery time."""
        cur = self._run(
            "UPDATE outbox SET sent_at = ? WHERE outbox_id = ? AND sent_at IS NULL",
            (_ts(at), outbox_id),
        )
        if cur.rowcount == 0 and (
            self._run("SELECT 1 FROM outbox WHERE outbox_id = ?", (outbox_id,)).fetchone() is None
        ):
            raise NotFound(f"no outbox message {outbox_id}")


# --- the store -------------------------------------------------------------------------------


class _Transaction(AbstractContextManager[UnitOfWork]):
    """`with store.unit_of_work() as uow:` — BEGIN IMMEDIATE, then COMMIT or ROLLBACK."""

    __slots__ = ("_store", "_uow")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._uow: SqliteUnitOfWork | None = None

    def __enter__(self) -> UnitOfWork:
        self._uow = self._store._begin()
        return self._uow

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._uow is not None:
            self._store._end(self._uow, commit=exc_type is None)
            self._uow = None


class SqliteStore:
    """The store in one SQLite file. Build it with `SqliteStore.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        """Wrap an open, migrated connection in autocommit mode; use `open` instead."""
        self._conn = conn
        self._clock = clock
        # One connection, one transaction at a time: threads take turns for a whole unit of work.
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._closed = False
        # (outbox_id, sent_at) of delivered messages not yet recorded: see Store.mark_sent_soon
        self._sent_soon: list[tuple[int, str]] = []
        self._sent_soon_lock = threading.Lock()  # apart from _lock: callable inside a unit of work

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock | None = None) -> SqliteStore:
        """Open (creating it and its folder if needed) and migrate the database at `path`.

        `":memory:"` gives a private in-memory database (no WAL), handy for tests. `clock`
        stamps the times a caller leaves empty; the system clock by default.
        """
        if sqlite3.sqlite_version_info < (3, 37, 0):  # STRICT tables, RETURNING, UPSERT
            raise StoreError(
                f"SQLite >= 3.37 is required, this Python has {sqlite3.sqlite_version}"
            )
        memory = str(path) == _MEMORY
        if not memory:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT / ROLLBACK ourselves
            check_same_thread=False,  # guarded by the store's lock instead
            cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if not memory and str(mode).lower() != "wal":
                raise StoreError(f"could not switch {path} to WAL (journal mode is {mode!r})")
            # WAL + NORMAL: a commit survives a process crash; only an OS crash or power loss may
            # lose the last commits, never corrupt the file. fsync per turn would cost ~ms.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, load_migrations())
        except BaseException:
            conn.close()
            raise
        return cls(conn, clock or SystemClock())

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (the number of the last migration applied)."""
        self._refuse_reentry("read the schema version")
        with self._lock:
            self._check_open()
            return schema_version(self._conn)

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A transaction: commits when the `with` block ends, rolls back if it raises."""
        return _Transaction(self)

    def mark_sent_soon(self, outbox_ids: Sequence[int], at: datetime) -> None:
        """Mark messages sent with the next unit of work (see Store.mark_sent_soon)."""
        if self._closed:
            log.warning(
                "store closed: %d delivery record(s) dropped; those messages go out again at the"
                " next start",
                len(outbox_ids),
            )
            return
        stamp = _ts(at)
        with self._sent_soon_lock:
            self._sent_soon.extend((outbox_id, stamp) for outbox_id in outbox_ids)

    def flush(self) -> None:
        """Record what mark_sent_soon holds now, in a unit of work of its own."""
        if self._sent_soon:
            with self.unit_of_work():
                pass  # _begin writes them

    def close(self) -> None:
        """Record the deliveries still held, then close the connection (waits for a unit of work
        running in another thread). The connection closes even if recording fails."""
        self._refuse_reentry("close the store")
        if not self._closed:
            try:
                self.flush()
            except Exception:  # e.g. another process holds the write lock past the busy timeout
                log.exception(
                    "store: delivery records not written at close; those messages go out again"
                    " at the next start"
                )
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _refuse_reentry(self, action: str) -> None:
        # Waiting for our own lock would hang forever: doing this inside a unit of work is a bug.
        if self._owner == threading.get_ident():
            raise RuntimeError(f"cannot {action}: a unit of work is already open in this thread")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")

    def _begin(self) -> SqliteUnitOfWork:
        self._refuse_reentry("open a unit of work")
        self._lock.acquire()
        try:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            with self._sent_soon_lock:
                sent, self._sent_soon = self._sent_soon, []
            if sent:
                try:
                    self._conn.executemany(
                        "UPDATE outbox SET sent_at = ?2 WHERE outbox_id = ?1 AND sent_at IS NULL",
                        sent,
                    )
                except BaseException:
                    self._hand_back(sent)
                    if self._conn.in_transaction:  # some errors roll back by themselves
                        self._conn.execute("ROLLBACK")
                    raise
        except BaseException:
            self._lock.release()
            raise
        self._owner = threading.get_ident()
        uow = SqliteUnitOfWork(self._conn, self._clock)
        uow._sent = sent
        return uow

    def _hand_back(self, sent: list[tuple[int, str]]) -> None:
        if sent:
            with self._sent_soon_lock:
                self._sent_soon[:0] = sent

    def _end(self, uow: SqliteUnitOfWork, *, commit: bool) -> None:
        uow._active = False
        committed = False
        try:
            if commit:
                try:
                    self._conn.execute("COMMIT")
                    committed = True
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            # Some errors (disk full, I/O) roll back by themselves: don't ROLLBACK twice.
            elif self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            if not committed:  # the delivery records it carried: the next unit of work tries again
                self._hand_back(uow._sent)
            self._owner = None
            self._lock.release()
