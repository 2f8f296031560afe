"""The store's SQL, written once for every database: one unit of work and the store around it.

Conventions (both backends follow them; tests/store/ checks them on each):

* Versions (optimistic locking). A ticket or conversation carries the version it was read at.
  `update_ticket(t)` writes where the stored version equals `t.version`, stores `t.version + 1`
  and returns the ticket with that version; a mismatch raises ConcurrentUpdate, a missing row
  NotFound. `add_ticket` stores the ticket's version as given (the model's default is 1).
  `save_conversation(c)` inserts when `c.version == 0` (ConcurrentUpdate if the key exists) and
  otherwise updates where the stored version equals `c.version`; it returns a copy with
  `version + 1` (the input object is not changed). Where the dialect pipelines, the update's
  check runs on the server and travels with the next statement or the COMMIT: its
  ConcurrentUpdate / NotFound comes from there, and the unit of work commits nothing.
* Times come back timezone-aware in UTC; naive datetimes are refused (ValueError). The store
  stamps the time itself only where the caller left it empty (a conversation's `updated_at`, an
  outbox message's `created_at`), from the clock the store was opened with.
* Ids. Evidence, events and outbox messages get their ids from the store: pass them with id None
  and use the returned copy.
* Transactions. A unit of work is one write transaction, begun as its dialect says. A ticket
  number allocated in a unit of work that rolls back is handed out again. A store error the
  caller catches leaves the rest of the unit of work usable, except one from a statement sent
  later than it was asked for (`record_event`, `attach_evidence`, `queue`, a conversation's
  update where the dialect pipelines): that unit of work commits nothing, whoever catches it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from bot.clock import Clock
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
from bot.store import _rows as rows
from bot.store._dialect import Dialect
from bot.store._interface import (
    AgentFacts,
    AlbumPart,
    Backlog,
    Block,
    CaseEntry,
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DecisionFacts,
    DeskCase,
    EventFacts,
    HistoryReads,
    Identity,
    Lease,
    NotFound,
    OpenedRecipient,
    OutboxMessage,
    Rating,
    TicketFacts,
    UnitOfWork,
)

log = logging.getLogger(__name__)

Params = dict[str, object]
T = TypeVar("T")


class Cursor(Protocol):
    """What the unit of work needs of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: Any, params: Any = ...) -> Any: ...


class PipelinedConnection(Connection, Protocol):
    """A connection that can send several statements before reading their results (psycopg's
    pipeline mode): the statements of a `with conn.pipeline():` block cost one round trip."""

    def pipeline(self) -> AbstractContextManager[Any]: ...


Deferred = list[tuple[str, Params | None]]  # statements (as the database spells them) not sent yet


def send_pipelined(conn: Connection, statements: Deferred) -> Cursor:
    """Run `statements` in order in one round trip (a connection of a Dialect that pipelines);
    the cursor of the last. The first statement to fail raises, and none after it runs."""
    return send_all_pipelined(conn, statements)[-1]


def send_all_pipelined(conn: Connection, statements: Deferred) -> list[Cursor]:
    """`send_pipelined`, with every statement's cursor."""
    pipelined: PipelinedConnection = conn  # type: ignore[assignment]
    with pipelined.pipeline():
        return [pipelined.execute(text, params or {}) for text, params in statements]


def _mark_processed(d: Dialect, dedupe_key: str, at: datetime) -> tuple[str, Params]:
    return (
        "INSERT INTO processed_updates (dedupe_key, at) VALUES (:key, :at)"
        " ON CONFLICT (dedupe_key) DO NOTHING",
        {"key": dedupe_key, "at": d.ts(at)},
    )


def _conversation_query(key: ConversationKey) -> tuple[str, Params]:
    return (
        f"SELECT {rows.CONVERSATION_COLS} FROM conversations"
        " WHERE channel = :channel AND user_id = :user",
        {"channel": key.channel, "user": key.user_id},
    )


def _tickets_of_customer_query(customer_id: int) -> tuple[str, Params]:
    return (
        f"{rows.SELECT_TICKETS} WHERE customer_id = :id ORDER BY created_at DESC, ticket_no DESC",
        {"id": customer_id},
    )


def _orders_of_query(customer_id: int) -> tuple[str, Params]:
    return (
        f"SELECT {rows.ORDER_COLS} FROM orders WHERE phone ="
        " (SELECT phone FROM customers WHERE customer_id = :id)"
        " ORDER BY paid_at DESC, order_id",
        {"id": customer_id},
    )


def _refunded_query(order_id: str) -> tuple[str, Params]:
    return (
        "SELECT coalesce(sum(amount_fen), 0) FROM refunds"
        f" WHERE order_id = :id AND state IN {rows.COUNTED}",
        {"id": order_id},
    )


def _pending_album_query(channel: str, chat: str) -> tuple[str, Params]:
    return (
        "SELECT group_id FROM album_parts WHERE channel = :channel AND chat = :chat"
        " ORDER BY update_id LIMIT 1",
        {"channel": channel, "chat": chat},
    )


def open_recipient_query(limit: int, channel: str, recipient: str) -> tuple[str, Params]:
    """A recipient's first pending messages, each row with the recipient's reply-keyboard flag
    (read by SqlUnitOfWork.opened)."""
    return (
        f"SELECT {rows.OUTBOX_COLS}, (SELECT reply_keyboard FROM recipient_state"
        " WHERE channel = :channel AND recipient = :recipient)"
        " FROM outbox WHERE sent_at IS NULL AND channel = :channel AND recipient = :recipient"
        " ORDER BY created_at, outbox_id LIMIT :limit",
        {"channel": channel, "recipient": recipient, "limit": limit},
    )


_SAVE_CONVERSATION = (
    "UPDATE conversations SET flow = :flow, state = :state, data = :data,"
    " locale = :locale, customer_id = :customer_id, updated_at = :updated_at,"
    " remind_at = :remind_at, version = version + 1"
    " WHERE channel = :channel AND user_id = :user_id AND version = :version"
)
# the same update, its row count checked by the server (PostgreSQL, migration 0011)
_SAVE_CONVERSATION_CHECKED = (
    f"WITH saved AS ({_SAVE_CONVERSATION} RETURNING 1)"
    " SELECT conversation_saved((SELECT count(*) FROM saved), :channel, :user_id)"
)
MARK_SENT = "UPDATE outbox SET sent_at = :at WHERE outbox_id = :id AND sent_at IS NULL"
_ENQUEUE = (
    "INSERT INTO outbox (channel, recipient, payload, created_at)"
    " VALUES (:channel, :recipient, :payload, :created_at)"
)


class SqlUnitOfWork:
    """All reads and writes of one transaction; valid only inside its `with` block."""

    __slots__ = (
        "_active",
        "_albums",
        "_clock",
        "_conn",
        "_d",
        "_deferred",
        "_orders",
        "_pipelines",
        "_savepoints",
        "_sql",
        "_tickets_read",
    )

    def __init__(self, conn: Connection, dialect: Dialect, clock: Clock) -> None:
        self._conn = conn
        self._d = dialect
        # None: the SQL is run as written (SQLite), saving a call per statement on every turn
        self._sql = dialect.sql if dialect.translates else None
        self._savepoints = dialect.savepoints
        self._pipelines = dialect.pipelines
        # statements whose results nobody reads (BEGIN, the chat lock, savepoints, a funnel
        # step), held until the next statement whose result is read or the COMMIT, and sent with
        # it in one round trip (Dialect.pipelines); their errors come up with that statement
        self._deferred: Deferred = []
        self._orders: dict[str, Order | None] = {}  # read in this unit of work, by id
        self._tickets_read: dict[str, Ticket | None] = {}  # by number, until written
        self._albums: dict[tuple[str, str], str | None] = {}  # read ahead (a turn's first trip)
        self._clock = clock
        self._active = True

    def _check_active(self) -> None:
        if not self._active:
            # The connection is shared: a stale handle would write into someone else's transaction.
            raise RuntimeError("this unit of work has ended; open a new one")

    def _run(self, sql: str, params: Params | None = None) -> Cursor:
        self._check_active()
        translate = self._sql
        text = sql if translate is None else translate(sql)
        try:
            if self._deferred:
                return self._pipelined(text, params)
            cur: Cursor = self._conn.execute(text, params or {})
        except Exception as exc:
            self._raise_mapped(exc)
        return cur

    def _raise_mapped(self, exc: Exception) -> NoReturn:
        """The store's error for a database error (the error itself when it has none)."""
        mapped = self._d.error(exc)
        if mapped is None:
            raise exc
        raise mapped from exc

    def _defer(self, sql: str, params: Params | None = None) -> None:
        """A statement whose result nobody reads and whose failure no caller handles: sent with
        the next one (Dialect.pipelines), or at once."""
        if not self._pipelines:
            self._run(sql, params)
            return
        self._check_active()
        self._deferred.append((sql if self._sql is None else self._sql(sql), params))

    def _pipelined(self, text: str, params: Params | None) -> Cursor:
        """The deferred statements and this one, in one round trip; the first error raised."""
        self._deferred.append((text, params))
        return send_pipelined(self._conn, self._take_deferred())

    def _run_together(self, statements: Sequence[tuple[str, Params | None]]) -> list[Cursor]:
        """Several statements in order, their cursors: in one round trip (with what was deferred
        before them) where the dialect pipelines."""
        if not self._pipelines:
            return [self._run(sql, params) for sql, params in statements]
        for sql, params in statements:
            self._defer(sql, params)
        try:
            return send_all_pipelined(self._conn, self._take_deferred())[-len(statements) :]
        except Exception as exc:
            self._raise_mapped(exc)

    def _send_deferred(self) -> None:
        """Send the deferred statements now (before work outside `_run`)."""
        if self._deferred:
            try:
                send_pipelined(self._conn, self._take_deferred())
            except Exception as exc:
                self._raise_mapped(exc)

    def _take_deferred(self) -> Deferred:
        """What is still to be sent, for the COMMIT to carry (the unit of work has ended)."""
        deferred, self._deferred = self._deferred, []
        return deferred

    def _write(self, sql: str, params: Params) -> Cursor:
        """A write whose store error the caller may catch and go on (see Dialect.savepoints)."""
        if not self._savepoints:
            return self._run(sql, params)
        self._defer("SAVEPOINT store_write")
        try:
            cur = self._run(sql, params)
            rows_ = cur.fetchall() if _returns(sql) else None
        except BaseException:
            try:
                self._run("ROLLBACK TO SAVEPOINT store_write")
            except Exception:  # a statement sent before it failed: the transaction is lost
                log.debug("no savepoint to go back to; the unit of work cannot commit")
            else:
                # ROLLBACK TO keeps the savepoint: gone now, so that a later failure whose own
                # SAVEPOINT was never sent (a deferred statement failed before it) cannot roll
                # back to this one and commit the rest
                self._defer("RELEASE SAVEPOINT store_write")
            raise
        self._defer("RELEASE SAVEPOINT store_write")
        return cur if rows_ is None else _Fetched(rows_, cur.rowcount)

    def _all(
        self, mapper: Callable[[Dialect, Any], T], sql: str, params: Params | None = None
    ) -> list[T]:
        """Every row of a query, mapped to domain values."""
        return [mapper(self._d, r) for r in self._run(sql, params).fetchall()]

    def _one(self, sql: str, params: Params) -> Any:
        # fetchall: a RETURNING statement must run to its end before COMMIT (SQLite)
        return self._write(sql, params).fetchall()[0]

    # locks across processes (nothing to take on a database with one writer at a time)

    def lock_chat(self, channel: str, chat_id: str) -> None:
        """Hold the chat from the next statement until this unit of work ends: another process's
        turn of it waits (the lock travels with that statement: no round trip of its own)."""
        if self._d.chat_lock is not None:  # waited for by the next statement that is read
            self._defer(self._d.chat_lock, {"key": f"chat:{channel}:{chat_id}"})

    def try_lock_recipient(self, channel: str, recipient: str) -> bool:
        """Hold a recipient's outbox until this unit of work ends; False: another process has it."""
        if self._d.recipient_try_lock is None:
            return True
        row = self._run(
            self._d.recipient_try_lock, {"key": f"recipient:{channel}:{recipient}"}
        ).fetchone()
        return bool(row[0])

    # customers

    def upsert_customer(self, phone: str, name: str) -> Customer:
        """The customer with this phone, created if new; an existing one takes the new name."""
        row = self._one(
            "INSERT INTO customers (phone, name) VALUES (:phone, :name)"
            " ON CONFLICT (phone) DO UPDATE SET name = excluded.name"
            f" RETURNING {rows.CUSTOMER_COLS}",
            {"phone": rows.phone(phone), "name": name},
        )
        return rows.customer(row)

    def _one_customer(self, where: str, params: Params) -> Customer | None:
        row = self._run(
            f"SELECT {rows.CUSTOMER_COLS} FROM customers WHERE {where}", params
        ).fetchone()
        return None if row is None else rows.customer(row)

    def customer(self, customer_id: int) -> Customer | None:
        """The customer with this id, if any."""
        return self._one_customer("customer_id = :id", {"id": customer_id})

    def customer_by_phone(self, phone: str) -> Customer | None:
        """The customer with this E.164 phone, if any."""
        return self._one_customer("phone = :phone", {"phone": phone})

    def link_identity(self, customer_id: int, identity: Identity) -> None:
        """Link an identity to a customer (re-linking moves the identity)."""
        self._write(
            "INSERT INTO customer_identities (channel, user_id, customer_id)"
            " VALUES (:channel, :user, :customer)"
            " ON CONFLICT (channel, user_id) DO UPDATE SET customer_id = excluded.customer_id",
            {"channel": identity.channel, "user": identity.user_id, "customer": customer_id},
        )

    def customer_by_identity(self, identity: Identity) -> Customer | None:
        """The customer this identity is linked to, if any."""
        return self._one_customer(
            "customer_id = (SELECT customer_id FROM customer_identities"
            " WHERE channel = :channel AND user_id = :user)",
            {"channel": identity.channel, "user": identity.user_id},
        )

    def set_customer_locale(self, customer_id: int, locale: str | None) -> None:
        """Remember the customer's language (None: the default)."""
        cur = self._run(
            "UPDATE customers SET locale = :locale WHERE customer_id = :id",
            {"locale": locale, "id": customer_id},
        )
        if cur.rowcount == 0:
            raise NotFound(f"no customer {customer_id}")

    # orders

    def upsert_order(self, order: Order) -> None:
        """Insert or replace an order by id, creating or renaming the customer of its phone."""
        self.upsert_customer(order.phone, order.customer_name)
        self._write(rows.UPSERT_ORDER, rows.order_params(self._d, order))
        self._orders.pop(order.order_id, None)

    def order(self, order_id: str) -> Order | None:
        """The order with this id, if any (read once per unit of work: a turn's action and view
        both look at it, and only an import writes orders)."""
        if order_id in self._orders:
            return self._orders[order_id]
        row = self._run(
            f"SELECT {rows.ORDER_COLS} FROM orders WHERE order_id = :id", {"id": order_id}
        ).fetchone()
        found = self._orders[order_id] = None if row is None else rows.order(self._d, row)
        return found

    def orders_of(self, customer_id: int) -> list[Order]:
        """The customer's orders (matched by phone), newest payment first."""
        return self._all(rows.order, *_orders_of_query(customer_id))

    # tickets

    def next_ticket_no(self, day: date) -> str:
        """Allocate the next ticket number of `day`: T{YYYYMMDD}-{NNNN}."""
        # One statement on one row: a second transaction waits for the first's row (PostgreSQL)
        # or its write lock (SQLite) and then counts on; no two see the same value.
        row = self._run(
            "INSERT INTO ticket_counters (day, last_no) VALUES (:day, 1)"
            " ON CONFLICT (day) DO UPDATE SET last_no = ticket_counters.last_no + 1"
            " RETURNING last_no",
            {"day": self._d.day(day)},
        ).fetchall()[0]  # fetchall: a RETURNING statement must run to its end before COMMIT
        return f"T{day:%Y%m%d}-{row[0]:04d}"

    def add_ticket(self, ticket: Ticket) -> None:
        """Store a new ticket; OpenTicketExists if its order has an open one already."""
        self._tickets_read.pop(ticket.ticket_no, None)
        stored = self._write(rows.INSERT_TICKET, rows.ticket_params(self._d, ticket)).fetchall()
        # as a read would find it: the turn that files a ticket shows it next
        self._tickets_read[ticket.ticket_no] = rows.ticket(self._d, stored[0])

    def _tickets(self, where: str, params: Params | None = None) -> list[Ticket]:
        return self._all(rows.ticket, f"{rows.SELECT_TICKETS} WHERE {where}", params)

    def ticket(self, ticket_no: str) -> Ticket | None:
        """The ticket with this number, if any (read once per unit of work until it writes the
        ticket: a view renders it from several helpers)."""
        if ticket_no in self._tickets_read:
            return self._tickets_read[ticket_no]
        found = self._tickets("ticket_no = :no", {"no": ticket_no})
        ticket = self._tickets_read[ticket_no] = found[0] if found else None
        return ticket

    def tickets_of_customer(self, customer_id: int) -> list[Ticket]:
        """The customer's tickets, newest first."""
        return self._all(rows.ticket, *_tickets_of_customer_query(customer_id))

    def tickets_of_order(self, order_id: str) -> list[Ticket]:
        """The order's tickets, newest first."""
        return self._tickets(
            "order_id = :id ORDER BY created_at DESC, ticket_no DESC", {"id": order_id}
        )

    def open_tickets(self) -> list[Ticket]:
        """Open tickets for the agent queue: by priority (high, fast, normal), review due, age."""
        return self._tickets(
            f"status IN ({rows.OPEN_IN}) ORDER BY {rows.PRIORITY_RANK},"
            " review_due IS NULL, review_due, created_at, ticket_no"
        )

    def update_ticket(self, ticket: Ticket) -> Ticket:
        """Write a ticket read at version n (changes applied); return it at version n + 1."""
        self._tickets_read.pop(ticket.ticket_no, None)
        cur = self._write(rows.UPDATE_TICKET, rows.ticket_params(self._d, ticket))
        if cur.rowcount == 1:
            return ticket.model_copy(update={"version": ticket.version + 1})
        stored = self._run(
            "SELECT version FROM tickets WHERE ticket_no = :no", {"no": ticket.ticket_no}
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
        row = self._one(rows.INSERT_EVIDENCE, rows.evidence_params(self._d, evidence))
        return evidence.model_copy(update={"evidence_id": row[0]})

    def attach_evidence(self, evidence: Evidence) -> None:
        """add_evidence, when the id is not needed: sent with the next statement whose result is
        read, or the COMMIT (Dialect.pipelines); a ticket that does not exist (NotFound) fails
        the unit of work, at the latest when it commits."""
        if evidence.evidence_id is not None:
            raise ValueError("evidence already has an id; the store assigns it")
        self._defer(rows.RECORD_EVIDENCE, rows.evidence_params(self._d, evidence))

    def evidence_of(self, ticket_no: str) -> list[Evidence]:
        """The ticket's evidence in the order it was added."""
        return self._all(
            rows.evidence,
            f"SELECT {rows.EVIDENCE_COLS} FROM evidence WHERE ticket_no = :no ORDER BY evidence_id",
            {"no": ticket_no},
        )

    def add_event(self, event: TicketEvent) -> TicketEvent:
        """Append an event to a ticket's audit trail; return it with its new event_id."""
        if event.event_id is not None:
            raise ValueError("event already has an id; the store assigns it")
        row = self._one(rows.INSERT_EVENT, rows.event_params(self._d, event))
        return event.model_copy(update={"event_id": row[0]})

    def record_event(self, event: TicketEvent) -> None:
        """add_event, when the id is not needed: sent like `attach_evidence`."""
        if event.event_id is not None:
            raise ValueError("event already has an id; the store assigns it")
        self._defer(rows.RECORD_EVENT, rows.event_params(self._d, event))

    def events_of(self, ticket_no: str) -> list[TicketEvent]:
        """The ticket's audit trail, oldest first."""
        return self._all(
            rows.event,
            f"SELECT {rows.EVENT_COLS} FROM ticket_events WHERE ticket_no = :no"
            " ORDER BY at, event_id",
            {"no": ticket_no},
        )

    # refunds ledger

    def add_refund(self, entry: RefundEntry) -> bool:
        """Record a payout; False (nothing written) when its idempotency key is already there."""
        cur = self._write(rows.INSERT_REFUND, rows.refund_params(self._d, entry))
        return cur.rowcount == 1

    def set_refund_state(self, idempotency_key: str, state: RefundState) -> None:
        """Move a payout to pending, paid or failed; the cash-paid cap still holds."""
        self._set_payout_state("refunds", "refund", idempotency_key, state)

    def _set_payout_state(
        self, table: str, what: str, idempotency_key: str, state: RefundState
    ) -> None:
        cur = self._write(
            f"UPDATE {table} SET state = :state WHERE idempotency_key = :key",
            {"state": state.value, "key": idempotency_key},
        )
        if cur.rowcount == 0:
            raise NotFound(f"no {what} with idempotency key {idempotency_key!r}")

    def refunds_of_order(self, order_id: str) -> list[RefundEntry]:
        """The order's payouts, oldest first, in every state."""
        return self._all(
            rows.refund,
            f"SELECT {rows.REFUND_COLS} FROM refunds WHERE order_id = :id"
            " ORDER BY created_at, idempotency_key",
            {"id": order_id},
        )

    def refunded_fen(self, order_id: str) -> int:
        """The order's pending + paid refunds in fen (failed ones do not count)."""
        return int(self._run(*_refunded_query(order_id)).fetchone()[0])

    def history_reads(self, customer_id: int, order_id: str) -> HistoryReads:
        """tickets_of_customer, orders_of and refunded_fen: one round trip (Dialect.pipelines)."""
        tickets, orders, refunded = self._run_together(
            [
                _tickets_of_customer_query(customer_id),
                _orders_of_query(customer_id),
                _refunded_query(order_id),
            ]
        )
        return HistoryReads(
            [rows.ticket(self._d, r) for r in tickets.fetchall()],
            [rows.order(self._d, r) for r in orders.fetchall()],
            int(refunded.fetchone()[0]),
        )

    # failed order-number checks per order (migration 0006)

    def link_failures(self, order_id: str) -> tuple[int, datetime | None]:
        """How many failed checks this order has had, and when it was locked (None: not)."""
        row = self._run(
            "SELECT failures, locked_at FROM link_attempts WHERE order_id = :id", {"id": order_id}
        ).fetchone()
        if row is None:
            return 0, None
        return int(row[0]), self._d.dt(row[1]) if row[1] is not None else None

    def record_link_failure(self, order_id: str, now: datetime, limit: int) -> int:
        """Count a failed check of this order; the `limit`-th locks it from `now`. The count."""
        row = self._one(
            "INSERT INTO link_attempts (order_id, failures) VALUES (:id, 1)"
            " ON CONFLICT (order_id) DO UPDATE SET failures = link_attempts.failures + 1"
            " RETURNING failures, locked_at",
            {"id": order_id},
        )
        if int(row[0]) >= limit and row[1] is None:
            self._write(
                "UPDATE link_attempts SET locked_at = :now WHERE order_id = :id",
                {"id": order_id, "now": self._d.ts(now)},
            )
        return int(row[0])

    def clear_link_failures(self, order_id: str) -> None:
        """The order's count starts over (the owner linked, or the pause ran out)."""
        self._write("DELETE FROM link_attempts WHERE order_id = :id", {"id": order_id})

    # compensation ledger (migration 0005): CPL Art. 53 payouts apart from the refunds' cap

    def add_compensation(self, entry: CompensationEntry) -> bool:
        """Record a compensation payout; False (nothing written) when its key is already there."""
        cur = self._write(rows.INSERT_COMPENSATION, rows.compensation_params(self._d, entry))
        return cur.rowcount == 1

    def set_compensation_state(self, idempotency_key: str, state: RefundState) -> None:
        """Move a compensation payout to pending, paid or failed."""
        self._set_payout_state("compensations", "compensation", idempotency_key, state)

    def compensations_of_ticket(self, ticket_no: str) -> list[CompensationEntry]:
        """The ticket's compensation payouts, oldest first, in every state."""
        return self._all(
            rows.compensation,
            f"SELECT {rows.COMPENSATION_COLS} FROM compensations WHERE ticket_no = :no"
            " ORDER BY created_at, idempotency_key",
            {"no": ticket_no},
        )

    # conversations

    def conversation(self, key: ConversationKey) -> Conversation | None:
        """The stored conversation of this channel and user, if any."""
        row = self._run(*_conversation_query(key)).fetchone()
        return None if row is None else rows.conversation(self._d, row, key)

    def save_conversation(self, conversation: Conversation) -> Conversation:
        """Insert (version 0) or update (version n) a conversation; return it at version n + 1."""
        c = conversation
        updated_at = c.updated_at if c.updated_at is not None else self._clock.now()
        values: Params = {
            "flow": c.flow,
            "state": c.state,
            "data": rows.as_json(c.data),
            "locale": c.locale,
            "customer_id": c.customer_id,
            "updated_at": self._d.ts(updated_at),
            "remind_at": self._d.ts_opt(c.remind_at),
            "channel": c.key.channel,
            "user_id": c.key.user_id,
            "version": c.version,
        }
        if c.version == 0:
            cur = self._write(
                "INSERT INTO conversations (channel, user_id, flow, state, data, locale,"
                " customer_id, version, updated_at, remind_at) VALUES (:channel, :user_id, :flow,"
                " :state, :data, :locale, :customer_id, 1, :updated_at, :remind_at)"
                " ON CONFLICT (channel, user_id) DO NOTHING",
                values,
            )
            if cur.rowcount == 0:
                raise ConcurrentUpdate(f"conversation {c.key} was created meanwhile")
        elif self._pipelines:
            # checked by the server (migration 0011), so that the update travels with the next
            # statement or the COMMIT: ConcurrentUpdate / NotFound come from there, and the
            # unit of work commits nothing (a turn never goes on after a failed save)
            self._defer(_SAVE_CONVERSATION_CHECKED, values)
        else:
            # _run, not _write: the savepoint would cost two statements on every turn, and a
            # turn never goes on after a failed save (a ConcurrentUpdate is raised here, on the
            # row count, with the transaction intact)
            cur = self._run(_SAVE_CONVERSATION, values)
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

    def _conversations(self, where: str, params: Params) -> list[Conversation]:
        return self._all(
            rows.conversation,
            f"SELECT {rows.CONVERSATION_COLS} FROM conversations WHERE {where}",
            params,
        )

    def conversations_due(self, now: datetime) -> list[Conversation]:
        """Conversations whose reminder is due (remind_at <= now), earliest first."""
        return self._conversations(
            "remind_at IS NOT NULL AND remind_at <= :now ORDER BY remind_at, channel, user_id",
            {"now": self._d.ts(now)},
        )

    def conversations_of_customer(self, customer_id: int) -> list[Conversation]:
        """The customer's conversations (any channel), the most recently active first."""
        return self._conversations(
            "customer_id = :id ORDER BY updated_at DESC, channel, user_id", {"id": customer_id}
        )

    def conversations_in(self, flow: str, state: str) -> list[Conversation]:
        """The conversations standing in one state (e.g. with a person), oldest change first."""
        return self._conversations(
            "flow = :flow AND state = :state ORDER BY updated_at, channel, user_id",
            {"flow": flow, "state": state},
        )

    # the agent desk

    def add_case(self, case: DeskCase) -> DeskCase:
        """Store a new case; return it with its id (StoreError: its ticket or customer has one)."""
        if case.case_id is not None:
            raise ValueError("case already has an id; the store assigns it")
        row = self._one(rows.INSERT_CASE, rows.case_params(self._d, case))
        return dataclasses.replace(case, case_id=row[0])

    def update_case(self, case: DeskCase) -> DeskCase:
        """Write every field of a stored case; NotFound if it does not exist."""
        cur = self._write(rows.UPDATE_CASE, rows.case_params(self._d, case))
        if cur.rowcount == 0:
            raise NotFound(f"no case {case.case_id}")
        return case

    def _one_case(self, where: str, params: Params) -> DeskCase | None:
        row = self._run(f"{rows.SELECT_CASES} WHERE {where} LIMIT 1", params).fetchone()
        return None if row is None else rows.case(self._d, row)

    def case(self, case_id: int) -> DeskCase | None:
        """The case with this id, if any."""
        return self._one_case("case_id = :id", {"id": case_id})

    def case_of_ticket(self, ticket_no: str) -> DeskCase | None:
        """The case of a ticket, if it has one."""
        return self._one_case("ticket_no = :no", {"no": ticket_no})

    def case_without_ticket(
        self, customer_id: int | None, conversation: ConversationKey
    ) -> DeskCase | None:
        """The ticketless case of a linked customer, or of an unlinked conversation."""
        if customer_id is not None:
            return self._one_case("ticket_no IS NULL AND customer_id = :id", {"id": customer_id})
        return self._one_case(
            "ticket_no IS NULL AND customer_id IS NULL AND channel = :channel AND user_id = :user",
            {"channel": conversation.channel, "user": conversation.user_id},
        )

    def latest_case_of_conversation(self, conversation: ConversationKey) -> DeskCase | None:
        """The case the conversation was last handed off to (the one its messages go to)."""
        return self._one_case(
            "channel = :channel AND user_id = :user AND handoff_at IS NOT NULL"
            " ORDER BY handoff_at DESC, case_id DESC",
            {"channel": conversation.channel, "user": conversation.user_id},
        )

    def case_in_thread(self, chat_id: int, thread_id: int) -> DeskCase | None:
        """The case whose forum topic this is."""
        return self._one_case(
            "chat_id = :chat AND thread_id = :thread ORDER BY case_id DESC",
            {"chat": chat_id, "thread": thread_id},
        )

    def case_of_message(self, chat_id: int, message_id: int) -> DeskCase | None:
        """The case an agent-chat message belongs to (see link_message)."""
        return self._one_case(
            "case_id = (SELECT case_id FROM desk_messages"
            " WHERE chat_id = :chat AND message_id = :message)",
            {"chat": chat_id, "message": message_id},
        )

    def cases_due(self) -> list[DeskCase]:
        """Cases whose card is still to be posted, oldest first."""
        return self._all(
            rows.case, f"{rows.SELECT_CASES} WHERE card_due = :yes ORDER BY case_id", {"yes": True}
        )

    def link_message(self, chat_id: int, message_id: int, case_id: int) -> None:
        """Record that an agent-chat message belongs to a case (again: the newest case wins)."""
        self._write(
            "INSERT INTO desk_messages (chat_id, message_id, case_id)"
            " VALUES (:chat, :message, :case)"
            " ON CONFLICT (chat_id, message_id) DO UPDATE SET case_id = excluded.case_id",
            {"chat": chat_id, "message": message_id, "case": case_id},
        )

    def remember_agent(self, user_id: int, name: str) -> None:
        """Remember an agent's display name (the newest one wins)."""
        self._write(
            "INSERT INTO desk_agents (user_id, name) VALUES (:user, :name)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name",
            {"user": user_id, "name": name},
        )

    def agent_names(self) -> dict[int, str]:
        """Every agent's remembered display name by user id."""
        found = self._run("SELECT user_id, name FROM desk_agents").fetchall()
        return {int(r[0]): str(r[1]) for r in found}

    # reports (read only)

    def _period(self, start: datetime, end: datetime) -> Params:
        return {"start": self._d.ts(start), "end": self._d.ts(end)}

    def ticket_facts(self, start: datetime, end: datetime) -> list[TicketFacts]:
        """Tickets created in [start, end) with their order's payment channel, oldest first."""
        return self._all(
            rows.ticket_facts,
            f"SELECT {rows.TICKET_FACT_COLS} FROM tickets t JOIN orders o USING (order_id)"
            f" WHERE {_CREATED} ORDER BY t.created_at, t.ticket_no",
            self._period(start, end),
        )

    def event_facts(self, start: datetime, end: datetime) -> list[EventFacts]:
        """The events of the tickets created in [start, end), by ticket, oldest first."""
        return self._all(
            rows.event_facts,
            "SELECT e.ticket_no, e.at, e.actor, e.kind, e.to_status, e.data"
            " FROM ticket_events e JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} ORDER BY e.ticket_no, e.at, e.event_id",
            self._period(start, end),
        )

    def decision_facts(self, start: datetime, end: datetime) -> list[DecisionFacts]:
        """Per ticket created in [start, end): when its trail reached each milestone."""
        d = self._d
        found = self._run(
            "SELECT e.ticket_no,"
            f" min(CASE WHEN e.kind IN ({_DECIDED}) THEN e.at END),"
            f" max(CASE WHEN e.kind IN ({_DECIDED}) THEN e.at END),"
            " max(CASE WHEN e.kind = 'approve' THEN e.at END),"
            " min(CASE WHEN e.kind = 'approve' THEN e.at END),"
            " min(CASE WHEN e.kind = 'mark_refunded' THEN e.at END),"
            " min(CASE WHEN e.kind = 'appeal' THEN e.at END),"
            " max(CASE WHEN e.kind = 'approve' AND e.actor = 'system' THEN 1 ELSE 0 END)"
            f" FROM ticket_events e JOIN tickets t USING (ticket_no) WHERE {_CREATED}"
            " GROUP BY e.ticket_no",
            self._period(start, end),
        ).fetchall()
        dt = d.dt_opt
        return [
            DecisionFacts(
                r[0], dt(r[1]), dt(r[2]), dt(r[3]), dt(r[4]), dt(r[5]), dt(r[6]), r[7] == 1
            )
            for r in found
        ]

    def agent_facts(self, start: datetime, end: datetime) -> list[AgentFacts]:
        """Per agent: tickets touched, decisions, and first responses (ticket created → the first
        agent event on it, when it was theirs), for the tickets created in [start, end)."""
        d = self._d
        params = self._period(start, end)
        counts = self._run(
            f"SELECT e.actor, count(DISTINCT e.ticket_no),"
            f" sum(CASE WHEN e.kind IN ({_DECIDED}) THEN 1 ELSE 0 END)"
            f" FROM ticket_events e JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} AND e.actor LIKE 'agent:%' GROUP BY e.actor ORDER BY e.actor",
            params,
        ).fetchall()
        first = self._run(
            "SELECT actor, at, created_at FROM (SELECT e.actor, e.at, t.created_at,"
            " row_number() OVER (PARTITION BY e.ticket_no ORDER BY e.at, e.event_id) AS n"
            " FROM ticket_events e JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} AND e.actor LIKE 'agent:%') AS firsts WHERE n = 1",
            params,
        ).fetchall()
        minutes: dict[str, list[float]] = {}
        for actor, at, created in first:
            took = (d.dt(at) - d.dt(created)).total_seconds() / 60
            minutes.setdefault(actor, []).append(took)
        return [
            AgentFacts(actor, int(cases), int(decisions), tuple(minutes.get(actor, ())))
            for actor, cases, decisions in counts
        ]

    def coupons_returned_fen(self, start: datetime, end: datetime) -> int:
        """Coupons given back on the tickets created in [start, end) (coupon_returned events)."""
        found = self._run(
            "SELECT e.data FROM ticket_events e JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} AND e.kind = 'coupon_returned'",
            self._period(start, end),
        ).fetchall()
        return sum(int(rows.json_object(r[0]).get("coupon_fen", 0)) for r in found)

    def paid_fen(self, start: datetime, end: datetime) -> int:
        """Refunds paid on the tickets created in [start, end)."""
        row = self._run(
            "SELECT coalesce(sum(r.amount_fen), 0) FROM refunds r JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} AND r.state = 'paid'",
            self._period(start, end),
        ).fetchone()
        return int(row[0])

    def payouts_of_tickets(self, start: datetime, end: datetime) -> list[RefundEntry]:
        """The refund payouts of the tickets created in [start, end), oldest first."""
        return self._all(
            rows.refund,
            f"SELECT {rows.REFUND_COLS_OF_R} FROM refunds r JOIN tickets t USING (ticket_no)"
            f" WHERE {_CREATED} ORDER BY r.created_at, r.idempotency_key",
            self._period(start, end),
        )

    def record_funnel(
        self, key: ConversationKey, step: str, at: datetime, detail: str | None = None
    ) -> None:
        """A conversation reached a funnel step (or was handed to a person: 'handoff')."""
        self._defer(
            "INSERT INTO funnel_events (channel, user_id, step, detail, at)"
            " VALUES (:channel, :user, :step, :detail, :at)",
            {
                "channel": key.channel,
                "user": key.user_id,
                "step": step,
                "detail": detail,
                "at": self._d.ts(at),
            },
        )

    def funnel(self, start: datetime, end: datetime) -> dict[str, int]:
        """How many conversations reached each funnel step in [start, end)."""
        found = self._run(
            "SELECT step, count(DISTINCT channel || ':' || user_id) FROM funnel_events"
            " WHERE at >= :start AND at < :end AND step <> 'handoff' GROUP BY step",
            self._period(start, end),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in found}

    def handoff_reasons(self, start: datetime, end: datetime) -> dict[str, int]:
        """Handoffs to a person in [start, end) by reason."""
        found = self._run(
            "SELECT coalesce(detail, ''), count(*) FROM funnel_events"
            " WHERE at >= :start AND at < :end AND step = 'handoff' GROUP BY detail",
            self._period(start, end),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in found}

    def backlog(self, today: date) -> Backlog:
        """The outbox backlog, tickets by status and what is overdue on `today` (Shanghai)."""
        outbox = self._run(
            "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL"
        ).fetchone()
        statuses = self._run("SELECT status, count(*) FROM tickets GROUP BY status").fetchall()
        overdue = self._run(
            "SELECT"
            f" sum(CASE WHEN status IN ({rows.REVIEWING_IN}) AND review_due < :today"
            " THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN status IN ({rows.PAYING_IN}) AND payout_due < :today"
            " THEN 1 ELSE 0 END)"
            f" FROM tickets WHERE status IN ({rows.OPEN_IN})",
            {"today": self._d.day(today)},
        ).fetchone()
        return Backlog(
            outbox_pending=int(outbox[0]),
            outbox_oldest=self._d.dt_opt(outbox[1]),
            tickets_by_status={str(r[0]): int(r[1]) for r in statuses},
            overdue_reviews=int(overdue[0] or 0),
            overdue_payouts=int(overdue[1] or 0),
        )

    def add_case_entry(self, entry: CaseEntry) -> CaseEntry:
        """Append a line to a case's history (a note, a message either way)."""
        row = self._one(
            "INSERT INTO desk_log (case_id, at, actor, kind, text)"
            " VALUES (:case, :at, :actor, :kind, :text) RETURNING entry_id",
            {
                "case": entry.case_id,
                "at": self._d.ts(entry.at),
                "actor": entry.actor,
                "kind": entry.kind,
                "text": entry.text,
            },
        )
        return dataclasses.replace(entry, entry_id=int(row[0]))

    def case_entries(self, case_id: int) -> list[CaseEntry]:
        """A case's history lines, oldest first."""
        return [
            CaseEntry(int(r[1]), self._d.dt(r[2]), r[3], r[4], r[5], int(r[0]))
            for r in self._run(
                "SELECT entry_id, case_id, at, actor, kind, text FROM desk_log"
                " WHERE case_id = :case ORDER BY entry_id",
                {"case": case_id},
            ).fetchall()
        ]

    def set_on_duty(self, user_id: int, name: str, on_duty: bool) -> None:
        """An agent goes on or off duty (remembering their name as remember_agent does)."""
        self._write(
            "INSERT INTO desk_agents (user_id, name, on_duty) VALUES (:user, :name, :on)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, on_duty = excluded.on_duty",
            {"user": user_id, "name": name, "on": on_duty},
        )

    def agents_on_duty(self) -> list[int]:
        """Agents on duty, the one assigned a case longest ago (or never) first."""
        found = self._run(
            "SELECT user_id FROM desk_agents WHERE on_duty = :yes"
            " ORDER BY assigned_at IS NOT NULL, assigned_at, user_id",
            {"yes": True},
        ).fetchall()
        return [int(r[0]) for r in found]

    def mark_assigned(self, user_id: int, at: datetime) -> None:
        self._write(
            "UPDATE desk_agents SET assigned_at = :at WHERE user_id = :user",
            {"user": user_id, "at": self._d.ts(at)},
        )

    def block(self, block: Block) -> None:
        """Block a customer's chat (a second block replaces the reason)."""
        self._write(
            "INSERT INTO desk_blocks (channel, user_id, reason, actor, at)"
            " VALUES (:channel, :user, :reason, :actor, :at)"
            " ON CONFLICT (channel, user_id) DO UPDATE SET reason = excluded.reason,"
            " actor = excluded.actor, at = excluded.at",
            {
                "channel": block.conversation.channel,
                "user": block.conversation.user_id,
                "reason": block.reason,
                "actor": block.actor,
                "at": self._d.ts(block.at),
            },
        )

    def unblock(self, conversation: ConversationKey) -> bool:
        cur = self._write(
            "DELETE FROM desk_blocks WHERE channel = :channel AND user_id = :user",
            {"channel": conversation.channel, "user": conversation.user_id},
        )
        return cur.rowcount == 1

    def blocked(self, conversation: ConversationKey) -> Block | None:
        row = self._run(
            "SELECT reason, actor, at FROM desk_blocks"
            " WHERE channel = :channel AND user_id = :user",
            {"channel": conversation.channel, "user": conversation.user_id},
        ).fetchone()
        return None if row is None else Block(conversation, row[0], row[1], self._d.dt(row[2]))

    # ratings

    def add_rating(self, rating: Rating) -> bool:
        """Store a ticket's rating; False (nothing changed) when it was rated before."""
        cur = self._write(
            "INSERT INTO ratings (ticket_no, score, comment, at)"
            " VALUES (:no, :score, :comment, :at) ON CONFLICT (ticket_no) DO NOTHING",
            {
                "no": rating.ticket_no,
                "score": rating.score,
                "comment": rating.comment,
                "at": self._d.ts(rating.at),
            },
        )
        return cur.rowcount == 1

    def comment_rating(self, ticket_no: str, comment: str) -> None:
        """Add the customer's comment to their rating (a comment given already stays)."""
        self._write(
            "UPDATE ratings SET comment = :comment WHERE ticket_no = :no AND comment IS NULL",
            {"no": ticket_no, "comment": comment},
        )

    def rating(self, ticket_no: str) -> Rating | None:
        found = self._ratings("ticket_no = :no", {"no": ticket_no})
        return found[0] if found else None

    def ratings_between(self, start: datetime, end: datetime) -> list[Rating]:
        """Ratings given in [start, end), oldest first (the reports read them)."""
        return self._ratings(
            "at >= :start AND at < :end", {"start": self._d.ts(start), "end": self._d.ts(end)}
        )

    def _ratings(self, where: str, params: Params) -> list[Rating]:
        found = self._run(
            f"SELECT ticket_no, score, at, comment FROM ratings WHERE {where}"
            " ORDER BY at, ticket_no",
            params,
        ).fetchall()
        return [Rating(r[0], int(r[1]), self._d.dt(r[2]), r[3]) for r in found]

    # exactly once

    def mark_processed(self, dedupe_key: str, at: datetime) -> bool:
        """Record an update/event key; True the first time, False when already recorded."""
        return self._run(*_mark_processed(self._d, dedupe_key, at)).rowcount == 1

    def mark_processed_and_read(
        self, dedupe_key: str, at: datetime, key: ConversationKey
    ) -> tuple[bool, Conversation | None]:
        """`mark_processed` and then `conversation(key)`, in one round trip where the dialect
        pipelines: how every turn begins."""
        statements = [_mark_processed(self._d, dedupe_key, at), _conversation_query(key)]
        if self._pipelines:
            # the chat's waiting album too (the adapter asks before every ordinary turn): free
            # in the same round trip, read under the chat's lock taken before it
            statements.append(_pending_album_query(key.channel, key.user_id))
        marked, found, *album = self._run_together(statements)
        if album:
            waiting = album[0].fetchone()
            self._albums[key.channel, key.user_id] = None if waiting is None else str(waiting[0])
        row = found.fetchone()
        return marked.rowcount == 1, None if row is None else rows.conversation(self._d, row, key)

    def forget_processed(self, before: datetime) -> int:
        """Drop the keys recorded before `before` (a scan: see migration 0003); how many."""
        cur = self._run(
            "DELETE FROM processed_updates WHERE at < :before", {"before": self._d.ts(before)}
        )
        return cur.rowcount

    # outbox

    def enqueue(self, message: OutboxMessage) -> OutboxMessage:
        """Queue a message for delivery after commit; return it with its id and creation time."""
        created_at, params = self._outbox_row(message)
        row = self._run(_ENQUEUE + " RETURNING outbox_id", params).fetchall()[0]
        return OutboxMessage(  # built directly, as in save_conversation
            channel=message.channel,
            recipient=message.recipient,
            payload=message.payload,
            outbox_id=row[0],
            created_at=created_at,
        )

    def queue(self, message: OutboxMessage) -> None:
        """`enqueue` for a caller that needs no id back: sent with the next statement (on
        PostgreSQL usually the COMMIT), not a round trip of its own."""
        self._defer(_ENQUEUE, self._outbox_row(message)[1])

    def _outbox_row(self, message: OutboxMessage) -> tuple[datetime, Params]:
        if message.outbox_id is not None:
            raise ValueError("message already has an id; the store assigns it")
        created_at = message.created_at if message.created_at is not None else self._clock.now()
        return created_at, {
            "channel": message.channel,
            "recipient": message.recipient,
            "payload": rows.as_json(message.payload),
            "created_at": self._d.ts(created_at),
        }

    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]:
        """Unsent messages, oldest first, at most `limit`; only `channel` / `recipient` if given."""
        where = ["sent_at IS NULL"]
        if channel is not None:
            where.append("channel = :channel")
        if recipient is not None:
            where.append("recipient = :recipient")
        return self._all(
            rows.outbox,
            f"SELECT {rows.OUTBOX_COLS} FROM outbox WHERE {' AND '.join(where)}"
            " ORDER BY created_at, outbox_id LIMIT :limit",
            {"channel": channel, "recipient": recipient, "limit": limit},
        )

    def mark_sent(self, outbox_id: int, at: datetime) -> None:
        """Mark a message delivered; a second call keeps the first delivery time."""
        cur = self._run(MARK_SENT, {"at": self._d.ts(at), "id": outbox_id})
        if cur.rowcount == 0 and (
            self._run("SELECT 1 FROM outbox WHERE outbox_id = :id", {"id": outbox_id}).fetchone()
            is None
        ):
            raise NotFound(f"no outbox message {outbox_id}")

    def open_recipient(
        self, limit: int, channel: str, recipient: str
    ) -> tuple[list[OutboxMessage], bool]:
        """The recipient's first unsent messages and, in the same query, its reply-keyboard flag."""
        return self.opened(self._run(*open_recipient_query(limit, channel, recipient)))

    def opened(self, found: Cursor) -> tuple[list[OutboxMessage], bool]:
        """What `open_recipient_query` read."""
        got = found.fetchall()
        shown = bool(got[0][-1]) if got else False
        return [rows.outbox(self._d, r) for r in got], shown

    def set_reply_keyboard(self, channel: str, recipient: str, shown: bool) -> None:
        """Remember whether the recipient's chat may show a reply keyboard (only `True` is kept
        as a row: the table holds the chats that may)."""
        params: Params = {"channel": channel, "recipient": recipient, "yes": True}
        if shown:
            self._run(
                "INSERT INTO recipient_state (channel, recipient, reply_keyboard)"
                " VALUES (:channel, :recipient, :yes) ON CONFLICT (channel, recipient)"
                " DO UPDATE SET reply_keyboard = excluded.reply_keyboard",
                params,
            )
        else:
            self._run(
                "DELETE FROM recipient_state WHERE channel = :channel AND recipient = :recipient",
                params,
            )

    # album parts

    def add_album_part(self, part: AlbumPart) -> bool:
        """Store a part unless its update was handled already; True when it waits now."""
        self._albums.clear()
        key: Params = {"key": part.dedupe_key}
        cur = self._run(
            "INSERT INTO album_parts"
            " (channel, chat, group_id, update_id, dedupe_key, payload, received_at)"
            " SELECT :channel, :chat, :group_id, :update_id, :key, :payload, :at"
            " WHERE NOT EXISTS (SELECT 1 FROM processed_updates WHERE dedupe_key = :key)"
            " ON CONFLICT (channel, update_id) DO NOTHING",
            {
                "channel": part.channel,
                "chat": part.chat,
                "group_id": part.group_id,
                "update_id": part.update_id,
                "payload": part.payload,
                "at": self._d.ts(part.received_at),
            }
            | key,
        )
        if cur.rowcount == 1:
            return True
        handled = self._run(
            "SELECT 1 FROM processed_updates WHERE dedupe_key = :key", key
        ).fetchone()
        return handled is None  # else stored already (by this process or another)

    def pending_album(self, channel: str, chat: str) -> str | None:
        """The media group of the chat's oldest waiting part; None when nothing waits (read
        ahead by mark_processed_and_read where the database pipelines)."""
        if (channel, chat) in self._albums:
            return self._albums[channel, chat]
        row = self._run(*_pending_album_query(channel, chat)).fetchone()
        return None if row is None else str(row[0])

    def album_parts(self, channel: str, chat: str) -> list[AlbumPart]:
        """The chat's waiting parts (of every album), by update id."""
        found = self._run(
            "SELECT channel, chat, group_id, update_id, dedupe_key, payload, received_at"
            " FROM album_parts WHERE channel = :channel AND chat = :chat ORDER BY update_id",
            {"channel": channel, "chat": chat},
        ).fetchall()
        return [AlbumPart(r[0], r[1], r[2], int(r[3]), r[4], r[5], self._d.dt(r[6])) for r in found]

    def drop_album_parts(self, channel: str, update_ids: Sequence[int], at: datetime) -> int:
        """The parts were handed over: record their dedupe keys as processed, drop them; how
        many were still there."""
        if not update_ids:
            return 0
        self._albums.clear()
        params: Params = {f"u{i}": update_id for i, update_id in enumerate(update_ids)}
        where = f"channel = :channel AND update_id IN ({', '.join(f':{k}' for k in params)})"
        params |= {"channel": channel, "at": self._d.ts(at)}
        self._run(
            "INSERT INTO processed_updates (dedupe_key, at)"
            f" SELECT dedupe_key, :at FROM album_parts WHERE {where}"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            params,
        )
        return int(self._run(f"DELETE FROM album_parts WHERE {where}", params).rowcount)

    def idle_albums(self, channel: str, before: datetime) -> list[str]:
        """Chats whose latest waiting part was received before `before`, oldest album first."""
        found = self._run(
            "SELECT chat FROM album_parts WHERE channel = :channel"
            " GROUP BY chat HAVING max(received_at) < :before ORDER BY min(update_id)",
            {"channel": channel, "before": self._d.ts(before)},
        ).fetchall()
        return [str(r[0]) for r in found]


_CREATED = "t.created_at >= :start AND t.created_at < :end"
_DECIDED = "'approve', 'reject'"


class _StoreLease:
    """A lease on a store with one process: reads in a unit of work, records soon after."""

    def __init__(self, store: SqlStore[Any]) -> None:
        self._store = store

    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]:
        with self._store.unit_of_work() as uow:
            return uow.pending_outbox(limit, channel, recipient)

    def record_sent(self, outbox_id: int, at: datetime) -> None:
        self._store.mark_sent_soon([outbox_id], at)

    def open_recipient(
        self, limit: int, channel: str, recipient: str
    ) -> tuple[list[OutboxMessage], bool]:
        with self._store.unit_of_work() as uow:
            return uow.open_recipient(limit, channel, recipient)

    def set_reply_keyboard(self, channel: str, recipient: str, shown: bool) -> None:
        with self._store.unit_of_work() as uow:
            uow.set_reply_keyboard(channel, recipient, shown)


def _returns(sql: str) -> bool:
    return " RETURNING " in sql


class _Fetched:
    """The rows of a statement already read to its end (inside a savepoint)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, found: list[Any], rowcount: int) -> None:
        self._rows = found
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


# --- the store around it -------------------------------------------------------------------------

C = TypeVar("C")


class _Transaction(AbstractContextManager[UnitOfWork]):
    """`with store.unit_of_work() as uow:` — begin, then COMMIT or ROLLBACK (a class, not a
    generator: this runs on every turn)."""

    __slots__ = ("_conn", "_sent", "_store", "_uow")

    def __init__(self, store: SqlStore[Any]) -> None:
        self._store = store
        self._uow: SqlUnitOfWork | None = None

    def __enter__(self) -> UnitOfWork:
        self._conn, self._uow, self._sent = self._store._begin()
        return self._uow

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._uow is not None:
            uow, self._uow = self._uow, None
            self._store._end(self._conn, uow, self._sent, commit=exc_type is None)


class SqlStore(ABC, Generic[C]):
    """What every backend's store shares: units of work over a connection `C` it lends out, and
    the delivery records of `mark_sent_soon` written with the next unit of work."""

    dialect: Dialect

    def __init__(self, dialect: Dialect, clock: Clock) -> None:
        self.dialect = dialect
        self._clock = clock
        self._closed = False
        self._local = threading.local()  # whether this thread has a unit of work open
        # (outbox_id, sent_at) of delivered messages not yet recorded: see Store.mark_sent_soon
        self._sent_soon: list[Params] = []
        self._sent_soon_lock = threading.Lock()  # callable inside a unit of work

    # what a backend provides

    @abstractmethod
    def _acquire(self) -> C:
        """A connection for one unit of work (waits for one)."""

    @abstractmethod
    def _release(self, conn: C) -> None:
        """Give the connection back, its transaction ended."""

    @abstractmethod
    def _in_transaction(self, conn: C) -> bool:
        """Whether a transaction is open on the connection (some errors end it by themselves)."""

    @abstractmethod
    def _commit(self, conn: C, deferred: Deferred) -> None:
        """Send what the unit of work deferred, then COMMIT (a backend refuses to commit a
        transaction its database already aborted)."""

    @abstractmethod
    def _execute_many(self, conn: C, sql: str, params: Sequence[Params]) -> None: ...

    @abstractmethod
    def _close(self) -> None:
        """Close the connections."""

    # the Store interface

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A transaction: commits when the `with` block ends, rolls back if it raises."""
        return _Transaction(self)

    def lease(self, name: str) -> AbstractContextManager[Lease | None]:
        """One holder at a time (see Store.lease). This base is for a database only one process
        writes to (SQLite): always held; records ride on the next unit of work."""
        return self._local_lease()

    @contextmanager
    def _local_lease(self) -> Iterator[Lease | None]:
        yield _StoreLease(self)

    @contextmanager
    def recipient_lease(
        self, channel: str, recipient: str, limit: int
    ) -> Iterator[OpenedRecipient | None]:
        """The recipient's outbox lease and its first pending messages (see Store)."""
        with self.lease(f"outbox:{channel}:{recipient}") as lease:
            if lease is None:
                yield None
            else:
                yield OpenedRecipient(lease, *lease.open_recipient(limit, channel, recipient))

    def mark_sent_soon(self, outbox_ids: Sequence[int], at: datetime) -> None:
        """Mark messages sent with the next unit of work (see Store.mark_sent_soon)."""
        if self._closed:
            log.warning(
                "store closed: %d delivery record(s) dropped; those messages go out again at the"
                " next start",
                len(outbox_ids),
            )
            return
        stamp = self.dialect.ts(at)
        with self._sent_soon_lock:
            self._sent_soon.extend({"id": outbox_id, "at": stamp} for outbox_id in outbox_ids)

    def flush(self) -> None:
        """Record what mark_sent_soon holds now, in a unit of work of its own."""
        if self._sent_soon:
            with self.unit_of_work():
                pass  # _begin writes them

    def close(self) -> None:
        """Record the deliveries still held, then close (waits for units of work running in
        other threads). The connections close even if recording fails."""
        self._refuse_reentry("close the store")
        if not self._closed:
            try:
                self.flush()
            except Exception:  # e.g. another process holds the write lock past the busy timeout
                log.exception(
                    "store: delivery records not written at close; those messages go out again"
                    " at the next start"
                )
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> SqlStore[C]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # inside

    def _refuse_reentry(self, action: str) -> None:
        # Waiting for a lock or connection this thread holds would hang: that is a caller's bug.
        if getattr(self._local, "open", False):
            raise RuntimeError(f"cannot {action}: a unit of work is already open in this thread")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")

    def _begin(self) -> tuple[C, SqlUnitOfWork, list[Params]]:
        self._refuse_reentry("open a unit of work")
        self._check_open()
        conn = self._acquire()
        try:
            self._check_open()
            uow = SqlUnitOfWork(conn, self.dialect, self._clock)  # type: ignore[arg-type]
            uow._defer(self.dialect.begin)
            with self._sent_soon_lock:
                sent, self._sent_soon = self._sent_soon, []
            if sent:
                try:
                    uow._send_deferred()
                    self._execute_many(conn, self.dialect.sql(MARK_SENT), sent)
                except BaseException:
                    self._hand_back(sent)
                    self._rollback(conn)
                    raise
        except BaseException:
            self._release(conn)
            raise
        self._local.open = True
        return conn, uow, sent

    def _end(self, conn: C, uow: SqlUnitOfWork, sent: list[Params], *, commit: bool) -> None:
        uow._active = False
        committed = False
        try:
            if commit:
                try:
                    self._commit(conn, uow._take_deferred())
                    committed = True
                except Exception as exc:
                    self._rollback(conn)
                    mapped = self.dialect.error(exc)
                    if mapped is None:
                        raise
                    raise mapped from exc
                except BaseException:
                    self._rollback(conn)
                    raise
            else:
                self._rollback(conn)
        finally:
            if not committed:  # the delivery records it carried: the next unit of work tries again
                self._hand_back(sent)
            self._local.open = False
            self._release(conn)

    def _rollback(self, conn: C) -> None:
        if self._in_transaction(conn):
            conn.execute("ROLLBACK")  # type: ignore[attr-defined]

    def _hand_back(self, sent: list[Params]) -> None:
        if sent:
            with self._sent_soon_lock:
                self._sent_soon[:0] = sent
