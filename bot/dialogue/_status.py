"""我的售后 (status), 补充材料 (supplement), 申诉 (appeal) and the escalation route."""

from __future__ import annotations

from typing import Any

from bot.dialogue import _render as render
from bot.dialogue._common import STEPS
from bot.dialogue._evidence import checklist, collected, requirement, stored_evidence
from bot.dialogue._paging import found, heading, normalised, page
from bot.domain import Refusal, Ticket, TicketEvent, TicketStatus
from bot.engine import (
    Choice,
    HandoffRequested,
    TicketAppealed,
    TicketSupplemented,
    Turn,
    View,
)
from bot.rules import can_appeal, is_overdue
from bot.tickets import move

REVIEWING = (TicketStatus.SUBMITTED, TicketStatus.IN_REVIEW, TicketStatus.APPEALED)


def _ticket(turn: Turn) -> Ticket:
    customer = turn.require_customer()
    ticket = turn.uow.ticket(str(turn.data.get("ticket_no", "")))
    if ticket is None or ticket.customer_id != customer.customer_id:
        raise Refusal("status.error.ticket_gone")
    return ticket


def _last_event(events: list[TicketEvent], kind: str) -> TicketEvent | None:
    return next((e for e in reversed(events) if e.kind == kind), None)


def next_step(turn: Turn, ticket: Ticket, events: list[TicketEvent]) -> str:
    """What happens next and by when, in the customer's words."""
    s = ticket.status
    if s in REVIEWING:
        return turn.t("status.next.review", review_due=render.day(ticket.review_due))
    if s is TicketStatus.NEEDS_INFO:
        request = _last_event(events, "request_info")
        return turn.t(
            "status.next.needs_info",
            request=str(request.data.get("request", "")) if request else "",
        )
    if s in (TicketStatus.APPROVED, TicketStatus.REFUNDING):
        return turn.t(
            "status.next.payout",
            amount_fen=ticket.approved_fen or 0,
            payout_due=render.day(ticket.payout_due),
        )
    if s is TicketStatus.REFUNDED:
        return turn.t("status.next.refunded", amount_fen=ticket.approved_fen or 0)
    if s is TicketStatus.REFUND_FAILED:
        return turn.t("status.next.refund_failed")
    if s is TicketStatus.REJECTED or (
        s is TicketStatus.CLOSED and ticket.approved_fen is None and _last_event(events, "reject")
    ):
        reject = _last_event(events, "reject")
        reason = str(reject.data.get("reason", "")) if reject else ""
        if can_appeal(ticket, turn.config.policy):
            return turn.t("status.next.rejected_can_appeal", reason=reason)
        return turn.t("status.next.rejected_final", reason=reason)
    return turn.t(f"status.next.{s.value}")


@STEPS.view("ticket_list")
def ticket_list(turn: Turn) -> View:
    customer = turn.require_customer()
    tickets = turn.uow.tickets_of_customer(customer.customer_id)  # newest first
    shown = page(turn, tickets, _ticket_matches)
    view = View()
    lines = [] if tickets else [turn.t("status.none")]
    view.before.extend(heading(shown, "status.search_found", "status.search_none"))
    for t in shown.items:
        overdue = turn.t("status.overdue_mark") if is_overdue(t, turn.now) else ""
        lines.append(
            turn.t(
                "status.list_line",
                ticket_no=t.ticket_no,
                status=render.status_name(turn, t),
                overdue=overdue,
            )
        )
        view.choices.append(
            Choice(
                "pick_ticket", t.ticket_no, label=f"{t.ticket_no} · {render.status_name(turn, t)}"
            )
        )
    view.choices.extend(shown.nav)
    paged = len(tickets) > turn.config.dialogue.page_size
    more = turn.t("status.search_hint", count=len(tickets)) if paged else ""
    view.params = {"tickets": "\n".join(lines), "count": len(tickets), "more": more}
    return view


def _ticket_matches(ticket: Ticket, query: str) -> bool:
    return query in normalised(ticket.ticket_no) or query in normalised(ticket.order_id)


@STEPS.condition("ticket_search_matches")
def ticket_search_matches(turn: Turn) -> bool:
    """Typed text on the ticket list finds a ticket, else it is not understood (and counts so)."""
    tickets = turn.uow.tickets_of_customer(turn.require_customer().customer_id)
    return found(turn, tickets, _ticket_matches, "status.search_none")


@STEPS.condition("ticket_is_offered")
def ticket_is_offered(turn: Turn) -> bool:
    customer = turn.require_customer()
    ticket = turn.uow.ticket(turn.arg or "")
    if ticket is None or ticket.customer_id != customer.customer_id:
        return turn.refuse("status.error.ticket_gone")
    return True


@STEPS.action("remember_ticket")
def remember_ticket(turn: Turn) -> None:
    turn.data["ticket_no"] = turn.arg
    turn.data.pop("evidence", None)
    turn.data.pop("note", None)
    turn.data.pop("notes", None)


@STEPS.view("ticket_detail")
def ticket_detail(turn: Turn) -> View:
    ticket = _ticket(turn)
    order = turn.uow.order(ticket.order_id)
    events = turn.uow.events_of(ticket.ticket_no)
    view = View(
        params={
            "ticket_no": ticket.ticket_no,
            "order": render.order_label(turn, order) if order else ticket.order_id,
            "reason": render.reason_label(
                turn, ticket.reason.value, ticket.sub_reason.value if ticket.sub_reason else None
            ),
            "status": render.status_name(turn, ticket),
            "amount_fen": ticket.approved_fen
            if ticket.approved_fen is not None
            else ticket.requested_fen,
            "next": next_step(turn, ticket, events),
            "timeline": render.timeline(turn, events),
        }
    )
    if is_overdue(ticket, turn.now):
        view.before.append(("status.overdue", {}))
    return view


@STEPS.condition("ticket_needs_info")
def ticket_needs_info(turn: Turn) -> bool:
    return _ticket(turn).status is TicketStatus.NEEDS_INFO


@STEPS.condition("ticket_can_appeal")
def ticket_can_appeal(turn: Turn) -> bool:
    return can_appeal(_ticket(turn), turn.config.policy)


@STEPS.condition("ticket_finally_rejected")
def ticket_finally_rejected(turn: Turn) -> bool:
    ticket = _ticket(turn)
    rejected = ticket.status is TicketStatus.REJECTED or (
        ticket.status is TicketStatus.CLOSED and ticket.approved_fen is None
    )
    return rejected and not can_appeal(ticket, turn.config.policy)


@STEPS.condition("ticket_is_overdue")
def ticket_is_overdue(turn: Turn) -> bool:
    return is_overdue(_ticket(turn), turn.now)


@STEPS.view("escalation")
def escalation(turn: Turn) -> View:
    """The escalation route and a complaint summary ready to send."""
    ticket = _ticket(turn)
    order = turn.uow.order(ticket.order_id)
    events = turn.uow.events_of(ticket.ticket_no)
    evidence = turn.uow.evidence_of(ticket.ticket_no)
    reject = _last_event(events, "reject")
    summary = turn.t(
        "status.complaint_summary",
        ticket_no=ticket.ticket_no,
        order_id=ticket.order_id,
        product=order.product_name if order else "",
        paid_on=render.moment(order.paid_at) if order else "",
        paid_fen=order.cash_paid_fen if order else 0,
        requested_fen=ticket.requested_fen,
        reason=render.reason_label(
            turn, ticket.reason.value, ticket.sub_reason.value if ticket.sub_reason else None
        ),
        rejection=str(reject.data.get("reason", "")) if reject else "",
        timeline=render.timeline(turn, events),
        evidence="\n".join(
            f"- {turn.t(f'evidence.kind.{e.kind.value}')} {e.caption or e.file_unique_id} "
            f"({render.moment(e.added_at)})"
            for e in evidence
        )
        or "—",
        # exactly the decision's basis: a summary sent to 12315 claims nothing that does not apply
        legal=render.basis(turn, ticket.quote.legal_refs),
    )
    return View(params={"summary": summary})


# -- supplement and appeal --------------------------------------------------------------------


@STEPS.view("supplement_checklist")
def supplement_checklist(turn: Turn) -> View:
    ticket = _ticket(turn)
    request = _last_event(turn.uow.events_of(ticket.ticket_no), "request_info")
    params = _material_checklist(turn)
    params["request"] = str(request.data.get("request", "")) if request else ""
    params["ticket_no"] = ticket.ticket_no
    return View(params=params)


def _material_checklist(turn: Turn) -> dict[str, Any]:
    """The upload checklist of a supplement or an appeal, where a typed note counts too."""
    params = checklist(turn, requirement(turn))
    ready = bool(collected(turn)) or bool(notes(turn))
    params["status"] = turn.t("supplement.ready" if ready else "supplement.waiting")
    return params


def notes(turn: Turn) -> list[str]:
    """The explanations typed in this supplement or appeal, in order (each kept whole)."""
    kept: list[str] = turn.data.setdefault("notes", [])
    legacy = turn.data.pop("note", None)  # a conversation saved when one note replaced the last
    if legacy:
        kept.insert(0, str(legacy))
    return kept


@STEPS.action("remember_note")
def remember_note(turn: Turn) -> None:
    kept = notes(turn)
    limit = turn.config.dialogue.max_notes
    if len(kept) >= limit:
        turn.say("supplement.notes_full", max=limit)
        return
    kept.append(turn.arg or "")
    turn.say("supplement.note_saved", n=len(kept))


@STEPS.condition("has_new_material")
def has_new_material(turn: Turn) -> bool:
    if collected(turn) or notes(turn):
        return True
    return turn.refuse("supplement.error.nothing_new")


def _attach(turn: Turn, ticket: Ticket) -> int:
    items = stored_evidence(turn)
    for item in items:
        turn.uow.attach_evidence(item.model_copy(update={"ticket_no": ticket.ticket_no}))
    turn.data.pop("evidence", None)
    return len(items)


@STEPS.action("ticket_moved_on")
def ticket_moved_on(turn: Turn) -> None:
    """The ticket moved on while the customer was adding material (an agent decided, another
    device appealed): nothing is sent, the customer sees where the ticket stands now."""
    turn.data.pop("evidence", None)
    turn.data.pop("note", None)
    turn.data.pop("notes", None)
    turn.say("status.moved_on", ticket_no=_ticket(turn).ticket_no)


@STEPS.action("send_supplement")
def send_supplement(turn: Turn) -> None:
    moved = _send_material(turn, "supplement", {}, "supplement.sent")
    turn.effect(TicketSupplemented(moved.ticket_no, moved.status.value))


def _send_material(turn: Turn, trigger: str, changes: dict[str, Any], sent_key: str) -> Ticket:
    """Attach the collected files and note to the ticket and move it on (supplement, appeal)."""
    ticket = _ticket(turn)
    actor = f"customer:{ticket.customer_id}"
    count = _attach(turn, ticket)
    written = notes(turn)
    turn.data.pop("notes", None)
    moved = move(
        turn.uow,
        ticket,
        trigger,
        actor,
        turn.now,
        changes,
        files=count,
        # every note in order; `note` (all of them) is what timelines and cards show
        note="\n\n".join(written) or None,
        notes=written,
    )
    turn.say(sent_key, ticket_no=moved.ticket_no)
    return moved


@STEPS.view("appeal_explain")
def appeal_explain(turn: Turn) -> View:
    ticket = _ticket(turn)
    reject = _last_event(turn.uow.events_of(ticket.ticket_no), "reject")
    return View(
        params={
            "ticket_no": ticket.ticket_no,
            "rejection": str(reject.data.get("reason", "")) if reject else "",
            "explanation": render.explanation(turn, ticket.quote),
            "hint": turn.t(ticket.quote.evidence.hint_key),
            "legal": render.basis(turn, ticket.quote.legal_refs),
        }
    )


@STEPS.view("appeal_checklist")
def appeal_checklist(turn: Turn) -> View:
    params = _material_checklist(turn)
    params["ticket_no"] = _ticket(turn).ticket_no
    return View(params=params)


@STEPS.action("send_appeal")
def send_appeal(turn: Turn) -> None:
    ticket = _ticket(turn)
    moved = _send_material(turn, "appeal", {"appeal_count": ticket.appeal_count + 1}, "appeal.sent")
    turn.effect(TicketAppealed(moved.ticket_no, moved.status.value))
    turn.effect(HandoffRequested(moved.customer_id, moved.ticket_no, reason="appeal"))
