"""Ticket operations shared by the dialogue, the agent desk and the CLI.

Each function works inside the caller's unit of work and writes an audit event for every change,
so a turn or an agent action commits the ticket, its events and its messages together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.calendar import WorkingCalendar
from bot.clock import to_local
from bot.config import Config
from bot.domain import (
    CompensationEntry,
    CompensationKind,
    Customer,
    Evidence,
    History,
    Order,
    Outcome,
    Quote,
    Reason,
    RefundEntry,
    RefundState,
    Refusal,
    SubReason,
    Ticket,
    TicketEvent,
    TicketStatus,
    TicketSummary,
    next_status,
)
from bot.rules import (
    assess,
    check_compensation,
    check_requested_amount,
    compensation_cap,
    coupon_back,
    payout_due,
)
from bot.store import OpenTicketExists, RefundExceedsCashPaid, UnitOfWork


def history(uow: UnitOfWork, customer: Customer, order: Order) -> History:
    """The customer's orders and tickets and the order's refunds, as the rules see them."""
    tickets, orders, refunded_fen = uow.history_reads(customer.customer_id, order.order_id)
    return History(
        orders=tuple(orders),
        tickets=tuple(
            TicketSummary(
                ticket_no=t.ticket_no,
                order_id=t.order_id,
                status=t.status,
                created_at=t.created_at,
                rejected_at=_last_rejection(uow, t),
            )
            for t in tickets
        ),
        refunded_fen=refunded_fen,
    )


def _last_rejection(uow: UnitOfWork, ticket: Ticket) -> datetime | None:
    # only tickets that went through a rejection need their events read
    if ticket.status not in (TicketStatus.REJECTED, TicketStatus.CLOSED, TicketStatus.APPEALED):
        return None
    rejections = [e.at for e in uow.events_of(ticket.ticket_no) if e.kind == "reject"]
    return max(rejections, default=None)


def quote(
    uow: UnitOfWork,
    config: Config,
    cal: WorkingCalendar,
    customer: Customer,
    order: Order,
    reason: Reason,
    sub_reason: SubReason | None,
    now: datetime,
) -> Quote:
    """The rules' pre-check for this customer's order now."""
    return assess(order, reason, sub_reason, now, config.policy, cal, history(uow, customer, order))


def submit(
    uow: UnitOfWork,
    config: Config,
    cal: WorkingCalendar,
    *,
    customer: Customer,
    order: Order,
    reason: Reason,
    sub_reason: SubReason | None,
    requested_fen: int,
    evidence: Iterable[Evidence],
    note: str | None,
    now: datetime,
) -> Ticket:
    """File a ticket: the rules are asked again at submission, the amount checked, a number
    allocated, evidence attached; a fast refund or verified duplicate is approved at once."""
    q = quote(uow, config, cal, customer, order, reason, sub_reason, now)
    if q.outcome is Outcome.REFUSED:
        raise Refusal(q.explanation[0], **q.explanation_params)
    problem = check_requested_amount(q, requested_fen)
    if problem is not None:
        raise Refusal(problem, max_fen=q.amount_fen)
    ticket_no = uow.next_ticket_no(to_local(now).date())
    ticket = Ticket(
        ticket_no=ticket_no,
        order_id=order.order_id,
        customer_id=customer.customer_id,
        reason=reason,
        sub_reason=sub_reason,
        priority=q.priority,
        requested_fen=requested_fen,
        quote=q,
        review_due=q.review_due,
        created_at=now,
        updated_at=now,
    )
    try:
        uow.add_ticket(ticket)
    except OpenTicketExists:
        raise Refusal("precheck.refused.open_ticket", ticket_no="") from None
    actor = f"customer:{customer.customer_id}"
    _event(
        uow,
        ticket,
        now,
        actor,
        "submitted",
        None,
        TicketStatus.SUBMITTED,
        amount_fen=requested_fen,
        outcome=q.outcome.value,
        policy=q.policy_fingerprint,
        note=note,
    )
    for item in evidence:
        uow.attach_evidence(item.model_copy(update={"ticket_no": ticket_no}))
    if q.outcome is Outcome.AUTO_APPROVE:
        ticket = approve(uow, config, cal, ticket, order, requested_fen, "system", now)
    return ticket


def move(
    uow: UnitOfWork,
    ticket: Ticket,
    trigger: str,
    actor: str,
    now: datetime,
    changes: dict[str, Any] | None = None,
    **data: Any,
) -> Ticket:
    """Move a ticket through its lifecycle (InvalidTransition if not allowed) with an event."""
    status = next_status(ticket.status, trigger)
    updated = ticket.model_copy(update={**(changes or {}), "status": status, "updated_at": now})
    try:
        stored = uow.update_ticket(updated)
    except OpenTicketExists:
        raise Refusal("appeal.error.other_open_ticket") from None
    _event(uow, stored, now, actor, trigger, ticket.status, status, **data)
    return stored


def approve(
    uow: UnitOfWork,
    config: Config,
    cal: WorkingCalendar,
    ticket: Ticket,
    order: Order,
    amount_fen: int,
    actor: str,
    now: datetime,
) -> Ticket:
    """Approve and record the payout in the ledger under an idempotency key, before any money
    moves, so a retried payout reuses the key and cannot pay twice."""
    due = payout_due(now, order, config.policy, cal)
    refunded_before = uow.refunded_fen(order.order_id)
    approved = move(
        uow,
        ticket,
        "approve",
        actor,
        now,
        {"approved_fen": amount_fen, "payout_due": due},
        amount_fen=amount_fen,
    )
    try:
        uow.add_refund(
            RefundEntry(
                idempotency_key=f"{ticket.ticket_no}/payout/{approved.appeal_count}",
                ticket_no=ticket.ticket_no,
                order_id=order.order_id,
                amount_fen=amount_fen,
                channel=order.payment_channel,
                state=RefundState.PENDING,
                created_at=now,
            )
        )
    except RefundExceedsCashPaid:
        raise Refusal("agent.error.amount_above_cap") from None
    # a refundable coupon comes back once the order's whole cash is refunded, whoever set the
    # amount (the customer, or an agent adjusting within the cap): recorded with the approval
    coupon = coupon_back(order, refunded_before, amount_fen)
    if coupon:
        add_note(uow, approved, actor, now, "coupon_returned", coupon_fen=coupon)
    return approved


def mark_refunded(
    uow: UnitOfWork, ticket: Ticket, actor: str, now: datetime
) -> tuple[Ticket, RefundEntry]:
    """The money arrived: the ticket's pending payout becomes paid, under its idempotency key."""
    pending = [
        r
        for r in uow.refunds_of_order(ticket.order_id)
        if r.ticket_no == ticket.ticket_no and r.state is RefundState.PENDING
    ]
    if not pending:
        raise Refusal("desk.error.no_payout", ticket_no=ticket.ticket_no)
    entry = pending[-1]
    # the move first: it refuses (InvalidTransition) before the ledger is touched
    moved = move(
        uow,
        ticket,
        "mark_refunded",
        actor,
        now,
        idempotency_key=entry.idempotency_key,
        amount_fen=entry.amount_fen,
    )
    uow.set_refund_state(entry.idempotency_key, RefundState.PAID)
    # compensation added to the ticket goes out with its payout (its own ledger and keys)
    for extra in uow.compensations_of_ticket(ticket.ticket_no):
        if extra.state is RefundState.PENDING:
            uow.set_compensation_state(extra.idempotency_key, RefundState.PAID)
    return moved, entry.model_copy(update={"state": RefundState.PAID})


def compensate(
    uow: UnitOfWork,
    config: Config,
    ticket: Ticket,
    order: Order,
    kind: CompensationKind,
    amount_fen: int,
    actor: str,
    now: datetime,
) -> CompensationEntry:
    """CPL Art. 53: add interest or reasonable costs to an approved ticket, capped by policy, as
    a payout of its own apart from the price refund and its cap, with an audit event."""
    earlier = [c for c in uow.compensations_of_ticket(ticket.ticket_no) if c.kind is kind]
    granted = sum(c.amount_fen for c in earlier if c.state is not RefundState.FAILED)
    problem = check_compensation(ticket, kind, amount_fen, granted, config.policy)
    if problem is not None:
        cap = compensation_cap(kind, config.policy)
        raise Refusal(problem, cap_fen=cap, granted_fen=granted)
    entry = CompensationEntry(
        idempotency_key=f"{ticket.ticket_no}/compensation/{kind.value}/{len(earlier)}",
        ticket_no=ticket.ticket_no,
        order_id=order.order_id,
        kind=kind,
        amount_fen=amount_fen,
        channel=order.payment_channel,
        actor=actor,
        created_at=now,
    )
    uow.add_compensation(entry)
    add_note(
        uow,
        ticket,
        actor,
        now,
        f"compensate_{kind.value}",
        amount_fen=amount_fen,
        idempotency_key=entry.idempotency_key,
    )
    return entry


def _event(
    uow: UnitOfWork,
    ticket: Ticket,
    now: datetime,
    actor: str,
    kind: str,
    from_status: TicketStatus | None,
    to_status: TicketStatus | None,
    **data: Any,
) -> None:
    uow.record_event(
        TicketEvent(
            ticket_no=ticket.ticket_no,
            at=now,
            actor=actor,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            data={k: v for k, v in data.items() if v is not None},
        )
    )


def add_note(
    uow: UnitOfWork, ticket: Ticket, actor: str, now: datetime, kind: str, **data: Any
) -> None:
    """An audit event that does not change the status (e.g. evidence supplemented)."""
    _event(uow, ticket, now, actor, kind, None, None, **data)
