"""The store: a narrow interface (units of work) and its SQLite implementation."""

from bot.store._interface import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DeskCase,
    Identity,
    NotFound,
    OpenTicketExists,
    OutboxMessage,
    RefundExceedsCashPaid,
    Store,
    StoreError,
    UnitOfWork,
)
from bot.store._migrations import SchemaTooNew
from bot.store._sqlite import SqliteStore

__all__ = [
    "ConcurrentUpdate",
    "Conversation",
    "ConversationKey",
    "DeskCase",
    "Identity",
    "NotFound",
    "OpenTicketExists",
    "OutboxMessage",
    "RefundExceedsCashPaid",
    "SchemaTooNew",
    "SqliteStore",
    "Store",
    "StoreError",
    "UnitOfWork",
]
