"""The store: a narrow interface (units of work), its SQLite and PostgreSQL implementations,
and `open_store(url)` to open the one a URL names."""

from bot.store._interface import (
    AgentFacts,
    Backlog,
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DecisionFacts,
    DeskCase,
    EventFacts,
    Identity,
    NotFound,
    OpenTicketExists,
    OutboxMessage,
    RefundExceedsCashPaid,
    Store,
    StoreError,
    TicketFacts,
    UnitOfWork,
)
from bot.store._migrations import SchemaTooNew
from bot.store._sqlite import SqliteStore
from bot.store._url import BadStoreUrl, StoreUrl, mask, open_store, parse_store_url

__all__ = [
    "AgentFacts",
    "Backlog",
    "BadStoreUrl",
    "ConcurrentUpdate",
    "Conversation",
    "ConversationKey",
    "DecisionFacts",
    "DeskCase",
    "EventFacts",
    "Identity",
    "NotFound",
    "OpenTicketExists",
    "OutboxMessage",
    "RefundExceedsCashPaid",
    "SchemaTooNew",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUrl",
    "TicketFacts",
    "UnitOfWork",
    "mask",
    "open_store",
    "parse_store_url",
]
