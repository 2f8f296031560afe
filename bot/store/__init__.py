"""The store: a narrow interface (units of work), its SQLite and PostgreSQL implementations,
and `open_store(url)` to open the one a URL names."""

from bot.store._interface import (
    Block,
    CaseEntry,
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    DeskCase,
    Identity,
    NotFound,
    OpenTicketExists,
    OutboxMessage,
    Rating,
    RefundExceedsCashPaid,
    Store,
    StoreError,
    UnitOfWork,
)
from bot.store._migrations import SchemaTooNew
from bot.store._sqlite import SqliteStore
from bot.store._url import BadStoreUrl, StoreUrl, mask, open_store, parse_store_url

__all__ = [
    "BadStoreUrl",
    "Block",
    "CaseEntry",
    "ConcurrentUpdate",
    "Conversation",
    "ConversationKey",
    "DeskCase",
    "Identity",
    "NotFound",
    "OpenTicketExists",
    "OutboxMessage",
    "Rating",
    "RefundExceedsCashPaid",
    "SchemaTooNew",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUrl",
    "UnitOfWork",
    "mask",
    "open_store",
    "parse_store_url",
]
