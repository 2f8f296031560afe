"""The dialogue engine: flows as data, one shared machine per flow, one transaction per turn.

It knows nothing about Telegram: adapters turn their updates into `Inbound` events and render the
`Reply` messages it returns (and writes to the outbox)."""

from bot.engine._effects import (
    AgentOffered,
    Effect,
    HandoffEnded,
    HandoffRequested,
    RelayedToAgent,
    ReminderScheduled,
    TicketAppealed,
    TicketSubmitted,
    TicketSupplemented,
)
from bot.engine._engine import COMMANDS, Engine
from bot.engine._events import (
    Button,
    ContactInfo,
    Copy,
    FileInfo,
    Inbound,
    Kind,
    Reply,
    TurnResult,
)
from bot.engine._flows import FLOWS_DIR, ROOT, Flow, FlowError, FlowSet, load_flows, mermaid
from bot.engine._funnel import STEPS as FUNNEL_STEPS
from bot.engine._registry import Choice, Registry, View
from bot.engine._turn import Services, Turn, turn_locale

__all__ = [
    "COMMANDS",
    "FLOWS_DIR",
    "FUNNEL_STEPS",
    "ROOT",
    "AgentOffered",
    "Button",
    "Choice",
    "ContactInfo",
    "Copy",
    "Effect",
    "Engine",
    "FileInfo",
    "Flow",
    "FlowError",
    "FlowSet",
    "HandoffEnded",
    "HandoffRequested",
    "Inbound",
    "Kind",
    "Registry",
    "RelayedToAgent",
    "ReminderScheduled",
    "Reply",
    "Services",
    "TicketAppealed",
    "TicketSubmitted",
    "TicketSupplemented",
    "Turn",
    "TurnResult",
    "View",
    "load_flows",
    "mermaid",
    "turn_locale",
]
