"""The agent desk (SPEC §4): cases, agent actions, relays, the queue and the deadlines.

Transport-neutral: it reads and writes through the store and moves customers' conversations with
SYSTEM events of the engine; bot/telegram/_desk.py shows it in a Telegram supergroup."""

from bot.handoff._actions import ADDRESS_PREFIXES, addressed, written_in
from bot.handoff._card import (
    PRESS_PREFIX,
    Action,
    Card,
    Texts,
    build_card,
    case_ref,
    parse_press,
    press_token,
)
from bot.handoff._desk import Desk, stored
from bot.handoff._model import (
    Agent,
    AgentMessage,
    Deadlines,
    DeskContext,
    Done,
    Supplement,
)

# the commands agents type in the agent chat, and the action each one is
COMMAND_ACTIONS: dict[str, Action] = {
    "claim": Action.CLAIM,
    "approve": Action.APPROVE,
    "reject": Action.REJECT,
    "need": Action.NEED,
    "refunded": Action.REFUNDED,
    "return": Action.RETURN,
    "compensate": Action.COMPENSATE,
    "note": Action.NOTE,
    "reply": Action.REPLY,
    "history": Action.HISTORY,
    "block": Action.BLOCK,
    "unblock": Action.UNBLOCK,
}
DESK_COMMANDS: frozenset[str] = frozenset({*COMMAND_ACTIONS, "queue", "duty"})

__all__ = [
    "ADDRESS_PREFIXES",
    "COMMAND_ACTIONS",
    "DESK_COMMANDS",
    "PRESS_PREFIX",
    "Action",
    "Agent",
    "AgentMessage",
    "Card",
    "Deadlines",
    "Desk",
    "DeskContext",
    "Done",
    "Supplement",
    "Texts",
    "addressed",
    "build_card",
    "case_ref",
    "parse_press",
    "press_token",
    "stored",
    "written_in",
]
