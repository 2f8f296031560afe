"""Rows to domain values and back: the store's column lists, row mappers and parameter builders.

Rows are plain tuples in column-list order (sqlite3 and psycopg both give them); parameters are
dicts for the `:name` SQL of bot/store/_sql.py. Values pass through the dialect's codecs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

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
    SentAs,
    SubReason,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.store._dialect import Dialect
from bot.store._interface import (
    Conversation,
    ConversationKey,
    DeskCase,
    EventFacts,
    OutboxMessage,
    TicketFacts,
)

Row = Sequence[Any]
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",")]


def insert(table: str, cols: list[str]) -> str:
    """`INSERT INTO table (a, b) VALUES (:a, :b)`."""
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"


def assign(cols: list[str]) -> str:
    """`a = :a, b = :b`."""
    return ", ".join(f"{c} = :{c}" for c in cols)


def as_json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def phone(text: str) -> str:
    if _E164.fullmatch(text) is None:
        raise ValueError(f"phone must be E.164 (e.g. +8613800138000), got {text!r}")
    return text


OPEN_IN: Final = ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATUSES))
COUNTED: Final = f"('{RefundState.PENDING.value}', '{RefundState.PAID.value}')"
PRIORITY_RANK: Final = (
    f"CASE priority WHEN '{Priority.HIGH.value}' THEN 0 WHEN '{Priority.FAST.value}' THEN 1"
    " ELSE 2 END"
)

# --- customers and orders ----------------------------------------------------------------------

CUSTOMER_COLS: Final = "customer_id, phone, name, locale"


def customer(row: Row) -> Customer:
    return Customer(customer_id=row[0], phone=row[1], name=row[2], locale=row[3])


ORDER_COLS: Final = (
    "order_id, phone, customer_name, product_name, category, list_price_fen, cash_paid_fen,"
    " coupon_fen, coupon_refundable, paid_at, service_start, service_end, activated_at,"
    " activation_exclusion_confirmed, used_days, payment_channel, seven_day_supported,"
    " merchant_status"
)
_ORDER_LIST: Final = columns(ORDER_COLS)
UPSERT_ORDER: Final = (
    insert("orders", _ORDER_LIST)
    + " ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ORDER_LIST[1:])
)


def order_params(d: Dialect, o: Order) -> dict[str, object]:
    return {
        "order_id": o.order_id,
        "phone": o.phone,
        "customer_name": o.customer_name,
        "product_name": o.product_name,
        "category": o.category.value,
        "list_price_fen": o.list_price_fen,
        "cash_paid_fen": o.cash_paid_fen,
        "coupon_fen": o.coupon_fen,
        "coupon_refundable": o.coupon_refundable,
        "paid_at": d.ts(o.paid_at),
        "service_start": d.ts(o.service_start),
        "service_end": d.ts(o.service_end),
        "activated_at": d.ts_opt(o.activated_at),
        "activation_exclusion_confirmed": o.activation_exclusion_confirmed,
        "used_days": o.used_days,
        "payment_channel": o.payment_channel.value,
        "seven_day_supported": o.seven_day_supported,
        "merchant_status": o.merchant_status.value,
    }


def order(d: Dialect, row: Row) -> Order:
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
        paid_at=d.dt(row[9]),
        service_start=d.dt(row[10]),
        service_end=d.dt(row[11]),
        activated_at=d.dt_opt(row[12]),
        activation_exclusion_confirmed=bool(row[13]),
        used_days=row[14],
        payment_channel=PaymentChannel(row[15]),
        seven_day_supported=bool(row[16]),
        merchant_status=MerchantStatus(row[17]),
    )


# --- tickets -----------------------------------------------------------------------------------

TICKET_COLS: Final = (
    "ticket_no, order_id, customer_id, reason, sub_reason, status, priority, requested_fen,"
    " approved_fen, quote, review_due, payout_due, appeal_count, assignee, created_at, updated_at,"
    " version"
)
# the ticket as stored comes back, for the unit of work's read cache (SqlUnitOfWork.ticket)
INSERT_TICKET: Final = insert("tickets", columns(TICKET_COLS)) + f" RETURNING {TICKET_COLS}"
SELECT_TICKETS: Final = f"SELECT {TICKET_COLS} FROM tickets"
# The identity of a ticket (number, order, customer, creation) is in the WHERE clause rather than
# the SET list: a caller that changed it gets an error instead of a silent partial write.
_IDENTITY: Final = ["ticket_no", "order_id", "customer_id", "created_at"]
UPDATE_TICKET: Final = (
    "UPDATE tickets SET "
    + assign([c for c in columns(TICKET_COLS) if c not in (*_IDENTITY, "version")])
    + ", version = version + 1 WHERE version = :version AND "
    + " AND ".join(f"{c} = :{c}" for c in _IDENTITY)
)


def ticket_params(d: Dialect, t: Ticket) -> dict[str, object]:
    return {
        "ticket_no": t.ticket_no,
        "order_id": t.order_id,
        "customer_id": t.customer_id,
        "reason": t.reason.value,
        "sub_reason": None if t.sub_reason is None else t.sub_reason.value,
        "status": t.status.value,
        "priority": t.priority.value,
        "requested_fen": t.requested_fen,
        "approved_fen": t.approved_fen,
        "quote": t.quote.model_dump_json(),
        "review_due": d.day(t.review_due),
        "payout_due": d.day(t.payout_due),
        "appeal_count": t.appeal_count,
        "assignee": t.assignee,
        "created_at": d.ts(t.created_at),
        "updated_at": d.ts(t.updated_at),
        "version": t.version,
    }


def ticket(d: Dialect, row: Row) -> Ticket:
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
        review_due=d.date(row[10]),
        payout_due=d.date(row[11]),
        appeal_count=row[12],
        assignee=row[13],
        created_at=d.dt(row[14]),
        updated_at=d.dt(row[15]),
        version=row[16],
    )


# what reports read of a ticket (tickets t JOIN orders o): no quote to parse
TICKET_FACT_COLS: Final = (
    "t.ticket_no, t.order_id, t.customer_id, o.payment_channel, t.reason, t.sub_reason, t.status,"
    " t.priority, t.requested_fen, t.approved_fen, t.review_due, t.payout_due, t.appeal_count,"
    " t.assignee, t.created_at"
)
# waiting for a decision / for the money (as bot.rules.is_overdue counts them)
REVIEWING_IN: Final = "'submitted', 'in_review', 'appealed'"
PAYING_IN: Final = "'approved', 'refunding'"


def ticket_facts(d: Dialect, row: Row) -> TicketFacts:
    return TicketFacts(
        ticket_no=row[0],
        order_id=row[1],
        customer_id=row[2],
        channel=row[3],
        reason=row[4],
        sub_reason=row[5],
        status=row[6],
        priority=row[7],
        requested_fen=row[8],
        approved_fen=row[9],
        review_due=d.date(row[10]),
        payout_due=d.date(row[11]),
        appeal_count=row[12],
        assignee=row[13],
        created_at=d.dt(row[14]),
    )


def json_object(data: Any) -> dict[str, Any]:
    """A JSON column's object (text in SQLite, maybe already decoded by psycopg)."""
    if isinstance(data, str):
        return {} if data == "{}" else dict(json.loads(data))
    return dict(data)


def event_facts(d: Dialect, row: Row) -> EventFacts:
    return EventFacts(
        ticket_no=row[0],
        at=d.dt(row[1]),
        actor=row[2],
        kind=row[3],
        to_status=row[4],
        data=json_object(row[5]),
    )


# --- evidence, events, refunds -----------------------------------------------------------------

EVIDENCE_COLS: Final = (
    "evidence_id, ticket_no, kind, file_id, file_unique_id, size_bytes, mime_type, caption, sha256,"
    " added_at, sent_as"
)
RECORD_EVIDENCE: Final = insert("evidence", columns(EVIDENCE_COLS)[1:])
INSERT_EVIDENCE: Final = RECORD_EVIDENCE + " RETURNING evidence_id"


def evidence_params(d: Dialect, e: Evidence) -> dict[str, object]:
    return {
        "ticket_no": e.ticket_no,
        "kind": e.kind.value,
        "file_id": e.file_id,
        "file_unique_id": e.file_unique_id,
        "size_bytes": e.size_bytes,
        "mime_type": e.mime_type,
        "caption": e.caption,
        "sha256": e.sha256,
        "added_at": d.ts(e.added_at),
        "sent_as": e.sent_as.value if e.sent_as is not None else None,
    }


def evidence(d: Dialect, row: Row) -> Evidence:
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
        added_at=d.dt(row[9]),
        sent_as=SentAs(row[10]) if row[10] is not None else None,
    )


EVENT_COLS: Final = "event_id, ticket_no, at, actor, kind, from_status, to_status, data"
RECORD_EVENT: Final = insert("ticket_events", columns(EVENT_COLS)[1:])
INSERT_EVENT: Final = RECORD_EVENT + " RETURNING event_id"


def event_params(d: Dialect, e: TicketEvent) -> dict[str, object]:
    return {
        "ticket_no": e.ticket_no,
        "at": d.ts(e.at),
        "actor": e.actor,
        "kind": e.kind,
        "from_status": None if e.from_status is None else e.from_status.value,
        "to_status": None if e.to_status is None else e.to_status.value,
        "data": as_json(e.data),
    }


def event(d: Dialect, row: Row) -> TicketEvent:
    return TicketEvent(
        event_id=row[0],
        ticket_no=row[1],
        at=d.dt(row[2]),
        actor=row[3],
        kind=row[4],
        from_status=None if row[5] is None else TicketStatus(row[5]),
        to_status=None if row[6] is None else TicketStatus(row[6]),
        data=json.loads(row[7]),
    )


REFUND_COLS: Final = "idempotency_key, ticket_no, order_id, amount_fen, channel, state, created_at"
REFUND_COLS_OF_R: Final = ", ".join(f"r.{c}" for c in columns(REFUND_COLS))
INSERT_REFUND: Final = (
    insert("refunds", columns(REFUND_COLS)) + " ON CONFLICT (idempotency_key) DO NOTHING"
)


def refund_params(d: Dialect, r: RefundEntry) -> dict[str, object]:
    return {
        "idempotency_key": r.idempotency_key,
        "ticket_no": r.ticket_no,
        "order_id": r.order_id,
        "amount_fen": r.amount_fen,
        "channel": r.channel.value,
        "state": r.state.value,
        "created_at": d.ts(r.created_at),
    }


def refund(d: Dialect, row: Row) -> RefundEntry:
    return RefundEntry(
        idempotency_key=row[0],
        ticket_no=row[1],
        order_id=row[2],
        amount_fen=row[3],
        channel=PaymentChannel(row[4]),
        state=RefundState(row[5]),
        created_at=d.dt(row[6]),
    )


COMPENSATION_COLS: Final = (
    "idempotency_key, ticket_no, order_id, kind, amount_fen, channel, state, actor, created_at"
)
INSERT_COMPENSATION: Final = (
    insert("compensations", columns(COMPENSATION_COLS))
    + " ON CONFLICT (idempotency_key) DO NOTHING"
)


def compensation_params(d: Dialect, c: CompensationEntry) -> dict[str, object]:
    return {
        "idempotency_key": c.idempotency_key,
        "ticket_no": c.ticket_no,
        "order_id": c.order_id,
        "kind": c.kind.value,
        "amount_fen": c.amount_fen,
        "channel": c.channel.value,
        "state": c.state.value,
        "actor": c.actor,
        "created_at": d.ts(c.created_at),
    }


def compensation(d: Dialect, row: Row) -> CompensationEntry:
    return CompensationEntry(
        idempotency_key=row[0],
        ticket_no=row[1],
        order_id=row[2],
        kind=CompensationKind(row[3]),
        amount_fen=row[4],
        channel=PaymentChannel(row[5]),
        state=RefundState(row[6]),
        actor=row[7],
        created_at=d.dt(row[8]),
    )


# --- conversations and the outbox --------------------------------------------------------------

CONVERSATION_COLS: Final = (
    "channel, user_id, flow, state, data, locale, customer_id, version, updated_at, remind_at"
)


def conversation(d: Dialect, row: Row, key: ConversationKey | None = None) -> Conversation:
    return Conversation(
        key=key or ConversationKey(channel=row[0], user_id=row[1]),
        flow=row[2],
        state=row[3],
        data=json.loads(row[4]),
        locale=row[5],
        customer_id=row[6],
        version=row[7],
        updated_at=d.dt(row[8]),
        remind_at=d.dt_opt(row[9]),
    )


OUTBOX_COLS: Final = "outbox_id, channel, recipient, payload, created_at"


def outbox(d: Dialect, row: Row) -> OutboxMessage:
    return OutboxMessage(
        outbox_id=row[0],
        channel=row[1],
        recipient=row[2],
        payload=json.loads(row[3]),
        created_at=d.dt(row[4]),
    )


# --- the agent desk ----------------------------------------------------------------------------

CASE_COLS: Final = (
    "case_id, ticket_no, customer_id, channel, user_id, reason, chat_id, thread_id,"
    " card_message_id, card_due, joined_by, handoff_at, opened_at, updated_at"
)
_CASE_LIST: Final = columns(CASE_COLS)[1:]
SELECT_CASES: Final = f"SELECT {CASE_COLS} FROM desk_cases"
INSERT_CASE: Final = insert("desk_cases", _CASE_LIST) + " RETURNING case_id"
UPDATE_CASE: Final = f"UPDATE desk_cases SET {assign(_CASE_LIST)} WHERE case_id = :case_id"


def case(d: Dialect, row: Row) -> DeskCase:
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
        handoff_at=d.dt_opt(row[11]),
        opened_at=d.dt(row[12]),
        updated_at=d.dt(row[13]),
    )


def case_params(d: Dialect, c: DeskCase) -> dict[str, object]:
    key = c.conversation
    return {
        "case_id": c.case_id,
        "ticket_no": c.ticket_no,
        "customer_id": c.customer_id,
        "channel": None if key is None else key.channel,
        "user_id": None if key is None else key.user_id,
        "reason": c.reason,
        "chat_id": c.chat_id,
        "thread_id": c.thread_id,
        "card_message_id": c.card_message_id,
        "card_due": c.card_due,
        "joined_by": c.joined_by,
        "handoff_at": d.ts_opt(c.handoff_at),
        "opened_at": d.ts(c.opened_at),
        "updated_at": d.ts(c.updated_at),
    }
