"""申请退款: order → reason → sub-reason → pre-check → evidence → amount → confirm → ticket."""

from __future__ import annotations

from bot.dialogue import _render as render
from bot.dialogue._common import FLOW_KEYS, STEPS, stored_quote
from bot.dialogue._evidence import checklist, stored_evidence
from bot.dialogue._paging import KEY as PAGE
from bot.dialogue._paging import found, heading, normalised, page
from bot.domain import SUB_REASONS, Order, Outcome, Quote, Reason, Refusal, SubReason
from bot.engine import Choice, TicketSubmitted, Turn, View
from bot.money import parse_yuan
from bot.rules import check_requested_amount, coupon_returned
from bot.tickets import quote, submit


def _order(turn: Turn) -> Order:
    customer = turn.require_customer()
    order = turn.uow.order(str(turn.data.get("order_id", "")))
    if order is None or order.phone != customer.phone:
        raise Refusal("apply.error.order_gone")
    return order


def _quote(turn: Turn) -> Quote:
    return stored_quote(turn)


@STEPS.view("menu")
def menu_view(turn: Turn) -> View:
    customer = turn.require_customer()
    return View(params={"name": customer.name})


@STEPS.view("order_choices")
def order_choices(turn: Turn) -> View:
    customer = turn.require_customer()
    orders = sorted(turn.uow.orders_of(customer.customer_id), key=lambda o: o.paid_at, reverse=True)
    shown = page(turn, orders, _order_matches)
    paged = len(orders) > turn.config.dialogue.page_size
    view = View(
        params={
            "count": len(orders),
            "more": turn.t("apply.search_hint", count=len(orders)) if paged else "",
        }
    )
    if not orders:
        view.before.append(("apply.no_orders", {}))
    view.before.extend(heading(shown, "apply.search_found", "apply.search_none"))
    for order in shown.items:
        view.choices.append(
            Choice("pick_order", order.order_id, label=render.order_label(turn, order))
        )
    view.choices.extend(shown.nav)
    return view


def _order_matches(order: Order, query: str) -> bool:
    return query in normalised(order.order_id) or query in normalised(order.product_name)


@STEPS.condition("order_search_matches")
def order_search_matches(turn: Turn) -> bool:
    """Typed text on the order list finds an order, else it is not understood (and counts so)."""
    orders = turn.uow.orders_of(turn.require_customer().customer_id)
    return found(turn, orders, _order_matches, "apply.search_none")


@STEPS.condition("order_is_offered")
def order_is_offered(turn: Turn) -> bool:
    customer = turn.require_customer()
    order = turn.uow.order(turn.arg or "")
    if order is None or order.phone != customer.phone:
        return turn.refuse("apply.error.order_gone")
    return True


@STEPS.action("remember_order")
def remember_order(turn: Turn) -> None:
    for key in FLOW_KEYS:
        if key != PAGE:  # "back" returns to the page (or search) the order was picked from
            turn.data.pop(key, None)
    turn.data["order_id"] = turn.arg


@STEPS.view("chosen_order")
def chosen_order(turn: Turn) -> View:
    order = _order(turn)
    return View(params={"order": render.order_label(turn, order), "order_id": order.order_id})


@STEPS.condition("reason_is_valid")
def reason_is_valid(turn: Turn) -> bool:
    return turn.arg in Reason.__members__.values()


@STEPS.condition("reason_is_other")
def reason_is_other(turn: Turn) -> bool:
    return turn.arg == Reason.OTHER.value


@STEPS.condition("reason_needs_sub_reason")
def reason_needs_sub_reason(turn: Turn) -> bool:
    return reason_is_valid(turn) and turn.arg in (Reason.SERVICE_ISSUE, Reason.MISTAKEN_PURCHASE)


@STEPS.action("remember_reason")
def remember_reason(turn: Turn) -> None:
    turn.data["reason"] = turn.arg
    turn.data.pop("sub_reason", None)


def _offered_sub_reasons(turn: Turn) -> tuple[SubReason, ...]:
    return SUB_REASONS[Reason(turn.data["reason"])]


@STEPS.view("sub_reason_choices")
def sub_reason_choices(turn: Turn) -> View:
    return View(
        params={"reason": turn.t(f"reason.{turn.data['reason']}")},
        choices=[
            Choice("pick_sub_reason", sub.value, label_key=f"sub_reason.{sub.value}")
            for sub in _offered_sub_reasons(turn)
        ],
    )


@STEPS.condition("sub_reason_is_offered")
def sub_reason_is_offered(turn: Turn) -> bool:
    return any(turn.arg == sub.value for sub in _offered_sub_reasons(turn))


@STEPS.action("remember_sub_reason")
def remember_sub_reason(turn: Turn) -> None:
    turn.data["sub_reason"] = turn.arg


@STEPS.action("run_precheck")
def run_precheck(turn: Turn) -> None:
    sub = turn.data.get("sub_reason")
    q = quote(
        turn.uow,
        turn.config,
        turn.services.calendar,
        turn.require_customer(),
        _order(turn),
        Reason(turn.data["reason"]),
        SubReason(sub) if sub else None,
        turn.now,
    )
    turn.data["quote"] = q.model_dump(mode="json")
    turn.data["evidence"] = []
    turn.data.pop("amount_fen", None)


@STEPS.view("precheck")
def precheck_view(turn: Turn) -> View:
    return View(params=render.precheck(turn, _quote(turn)))


@STEPS.condition("quote_allows_proceed")
def quote_allows_proceed(turn: Turn) -> bool:
    if _quote(turn).outcome in (Outcome.REVIEW, Outcome.AUTO_APPROVE):
        return True
    return turn.refuse("apply.error.not_eligible")


@STEPS.condition("quote_offers_dispute")
def quote_offers_dispute(turn: Turn) -> bool:
    return "activation_dispute" in _quote(turn).offers


@STEPS.condition("quote_is_refused")
def quote_is_refused(turn: Turn) -> bool:
    return _quote(turn).outcome is Outcome.REFUSED


@STEPS.action("choose_activation_dispute")
def choose_activation_dispute(turn: Turn) -> None:
    turn.data["sub_reason"] = SubReason.ACTIVATION_DISPUTE.value


@STEPS.view("evidence_checklist")
def evidence_checklist(turn: Turn) -> View:
    return View(params=checklist(turn, _quote(turn).evidence))


@STEPS.condition("evidence_enough")
def evidence_enough(turn: Turn) -> bool:
    req = _quote(turn).evidence
    have = len(turn.data.get("evidence", []))
    if have < req.min_count:
        return turn.refuse("evidence.error.not_enough", missing=req.min_count - have)
    return True


@STEPS.view("amount")
def amount_view(turn: Turn) -> View:
    q = _quote(turn)
    return View(
        params={"max_fen": q.amount_fen, "cap_fen": q.cap_fen},
        choices=[
            Choice(
                "accept_amount",
                None,
                label_key="button.accept_amount",
                label_params={"amount_fen": q.amount_fen},
            )
        ],
    )


def _typed_amount(turn: Turn) -> int | None:
    try:
        return parse_yuan(turn.arg or "")
    except ValueError:
        return None


@STEPS.condition("amount_is_valid")
def amount_is_valid(turn: Turn) -> bool:
    q = _quote(turn)
    fen = _typed_amount(turn)
    if fen is None:
        return turn.refuse("amount.error.format")
    problem = check_requested_amount(q, fen)
    if problem is not None:
        return turn.refuse(problem, max_fen=q.amount_fen)
    return True


@STEPS.action("remember_amount")
def remember_amount(turn: Turn) -> None:
    turn.data["amount_fen"] = _typed_amount(turn)


@STEPS.action("remember_default_amount")
def remember_default_amount(turn: Turn) -> None:
    turn.data["amount_fen"] = _quote(turn).amount_fen


@STEPS.view("confirm_summary")
def confirm_summary(turn: Turn) -> View:
    q = _quote(turn)
    order = _order(turn)
    returned = coupon_returned(q, int(turn.data["amount_fen"]))
    coupon = turn.t("confirm.coupon_returned", coupon_fen=returned) if returned else ""
    return View(
        params={
            "order": render.order_label(turn, order),
            "reason": render.reason_label(
                turn, q.reason.value, q.sub_reason.value if q.sub_reason else None
            ),
            "amount_fen": int(turn.data["amount_fen"]),
            "evidence": len(turn.data.get("evidence", [])),
            "coupon": coupon,
            "deadline": render.deadline(turn, q),
        }
    )


@STEPS.action("submit_ticket")
def submit_ticket(turn: Turn) -> None:
    customer = turn.require_customer()
    order = _order(turn)
    sub = turn.data.get("sub_reason")
    ticket = submit(
        turn.uow,
        turn.config,
        turn.services.calendar,
        customer=customer,
        order=order,
        reason=Reason(turn.data["reason"]),
        sub_reason=SubReason(sub) if sub else None,
        requested_fen=int(turn.data["amount_fen"]),
        evidence=stored_evidence(turn),
        note=turn.data.get("note"),
        now=turn.now,
    )
    for key in FLOW_KEYS:
        turn.data.pop(key, None)
    turn.data["ticket_no"] = ticket.ticket_no
    turn.say("apply.submitted", ticket_no=ticket.ticket_no)
    turn.effect(TicketSubmitted(ticket.ticket_no, ticket.status.value))
