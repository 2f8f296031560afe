"""What the agent desk does to a customer's conversation, fired as SYSTEM events (bot/handoff):
an agent joins, asks for more material, or the desk offers a person for an overdue payout."""

from __future__ import annotations

from bot.dialogue import _render as render
from bot.dialogue._common import FLOW_KEYS, STEPS
from bot.engine import AgentOffered, Turn


@STEPS.action("agent_joined")
def agent_joined(turn: Turn) -> None:
    """An agent started talking to the customer: from now on the chat is the agent's."""
    turn.data.setdefault("handoff", {"since": turn.now.isoformat(), "reason": "agent"})
    turn.say("handoff.joined", agent=turn.arg or "")


@STEPS.action("open_supplement")
def open_supplement(turn: Turn) -> None:
    """An agent asked for more material on ticket `arg`: the customer uploads it in its step."""
    # an application the customer had half done is dropped: the agent's request comes first, and
    # the supplement step reads the ticket from the same keys
    for key in FLOW_KEYS:
        turn.data.pop(key, None)
    turn.data["ticket_no"] = turn.arg
    # the person handed the chat back to the bot's upload step; the desk knows, it did this
    turn.data.pop("handoff", None)


@STEPS.action("offer_overdue_agent")
def offer_overdue_agent(turn: Turn) -> None:
    """The payout of ticket `arg` is overdue: say so and offer a person about that ticket."""
    ticket = turn.uow.ticket(turn.arg or "")
    if ticket is None or ticket.customer_id != turn.conv.customer_id:
        return
    turn.say(
        "handoff.payout_overdue",
        ticket_no=ticket.ticket_no,
        payout_due=render.day(ticket.payout_due),
    )
    if "handoff" not in turn.data:
        turn.data["offered_ticket"] = ticket.ticket_no
        turn.effect(AgentOffered(ticket_no=ticket.ticket_no))
