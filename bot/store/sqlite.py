"""The SQLite backend of the store (public entry point; the code lives in `_sqlite`)."""

from __future__ import annotations

from bot.store._migrations import SchemaTooNew
from bot.store._sqlite import BUSY_TIMEOUT_MS, SqliteStore, SqliteUnitOfWork

__all__ = ["BUSY_TIMEOUT_MS", "SchemaTooNew", "SqliteStore", "SqliteUnitOfWork"]
