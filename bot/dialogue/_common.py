"""Callbacks every flow uses: linking state, language, help, handoff, cancel."""

from __future__ import annotations

from bot.domain import Quote
from bot.engine import HandoffEnded, HandoffRequested, Registry, Turn

STEPS = Registry()

# data keys that belong to one application / one ticket visit; cancel clears them
FLOW_KEYS = (
    "order_id",
    "reason",
    "sub_reason",
    "quote",
    "evidence",
    "amount_fen",
    "note",
    "notes",
    "link_order_no",
    "page",  # where the customer is in a long list (bot/dialogue/_paging.py)
)


def stored_quote(turn: Turn) -> Quote:
    """The application's pre-check quote from the conversation data. A turn's conditions, actions
    and view often all read it; validating it once per turn is enough while the stored dict is
    the same object (it is only ever replaced, never changed in place)."""
    raw = turn.data["quote"]
    seen = turn.memo.get("quote")
    if seen is not None and seen[0] is raw:
        quote: Quote = seen[1]
        return quote
    quote = Quote.model_validate(raw)
    turn.memo["quote"] = (raw, quote)
    return quote


@STEPS.condition("is_linked")
def is_linked(turn: Turn) -> bool:
    return turn.conv.customer_id is not None


@STEPS.condition("is_mid_flow")
def is_mid_flow(turn: Turn) -> bool:
    return turn.conv.flow not in ("menu", "start")


@STEPS.action("welcome_back")
def welcome_back(turn: Turn) -> None:
    turn.say("common.welcome_back")


@STEPS.action("need_link")
def need_link(turn: Turn) -> None:
    turn.say("common.not_linked")


@STEPS.action("cancel_flow")
def cancel_flow(turn: Turn) -> None:
    had_application = "order_id" in turn.data and turn.conv.flow == "apply"
    for key in FLOW_KEYS:
        turn.data.pop(key, None)
    if had_application:
        turn.say("common.cancelled")
    if "handoff" in turn.data:
        # leaving a person's chat by cancel, menu, refund or status ends it, as "leave" does
        end_handoff(turn)


@STEPS.action("switch_language")
def switch_language(turn: Turn) -> None:
    locales = turn.services.catalog.locales
    current = turn.locale
    new = locales[(locales.index(current) + 1) % len(locales)] if current in locales else locales[0]
    turn.conv.locale = new
    if turn.conv.customer_id is not None:
        turn.uow.set_customer_locale(turn.conv.customer_id, new)
    turn.say("common.language_switched")


@STEPS.action("show_help")
def show_help(turn: Turn) -> None:
    turn.say("common.help")


@STEPS.action("request_handoff")
def request_handoff(turn: Turn) -> None:
    # the desk offered a person for an overdue payout: that ticket is what the person is about
    offered = turn.data.pop("offered_ticket", None)
    if "handoff" in turn.data:
        return  # already with a person: the desk has the case
    reason = "payout_overdue" if offered else turn.data.get("reason") or "customer_asked"
    turn.data["handoff"] = {"since": turn.now.isoformat(), "reason": reason}
    turn.effect(
        HandoffRequested(
            customer_id=turn.conv.customer_id,
            ticket_no=offered or turn.data.get("ticket_no"),
            reason=reason,
            order_id=turn.data.get("order_id"),
        )
    )


@STEPS.action("end_handoff")
def end_handoff(turn: Turn) -> None:
    turn.data.pop("handoff", None)
    turn.say("handoff.back_to_bot")
    turn.effect(HandoffEnded(turn.conv.customer_id))
