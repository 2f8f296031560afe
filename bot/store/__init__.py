"""The store: a narrow interface (units of work), its SQLite and PostgreSQL implementations,
and `open_store(url)` to open the one a URL names."""

from bot.store._interface import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DeskCase,
    Identity,
    Lease,
    NotFound,
    OpenTicketExists,
    OutboxMessage,
    RefundExceedsCashPaid,
    Store,
    StoreBusy,
    StoreError,
    UnitOfWork,
)
from bot.store._migrations import SchemaTooNew
from bot.store._sqlite import SqliteStore
from bot.store._url import BadStoreUrl, StoreUrl, mask, open_store, parse_store_url

__all__ = [
    "BadStoreUrl",
    "ConcurrentUpdate",
    "Conversation",
    "ConversationKey",
    "DeskCase",
    "Identity",
    "Lease",
    "NotFound",
    "OpenTicketExists",
    "OutboxMessage",
    "RefundExceedsCashPaid",
    "SchemaTooNew",
    "SqliteStore",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreUrl",
    "UnitOfWork",
    "mask",
    "open_store",
    "parse_store_url",
]
