"""The PostgreSQL backend of the store (public entry point; the code lives in `_postgres`)."""

from __future__ import annotations

from bot.store._postgres import PostgresStore, connect, migrate, schema_version

__all__ = ["PostgresStore", "connect", "migrate", "schema_version"]
