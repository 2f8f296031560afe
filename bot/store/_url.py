"""`open_store(url, clock)`: the store a URL names (URL parsing lives in bot/store_url.py)."""

from __future__ import annotations

from bot.clock import Clock
from bot.store._interface import Store
from bot.store_url import BadStoreUrl, StoreUrl, mask, parse_store_url, sqlite_url

__all__ = ["BadStoreUrl", "StoreUrl", "mask", "open_store", "parse_store_url", "sqlite_url"]


def open_store(
    url: str | StoreUrl, clock: Clock | None = None, *, busy_timeout_ms: int | None = None
) -> Store:
    """Open (and migrate) the store `url` names. StoreError when it cannot be opened.
    `busy_timeout_ms`: SQLite's wait for another connection's write lock (its default if None)."""
    target = url if isinstance(url, StoreUrl) else parse_store_url(url)
    if target.kind == "sqlite":
        from bot.store._sqlite import SqliteStore

        assert target.path is not None
        if busy_timeout_ms is None:
            return SqliteStore.open(target.path, clock=clock)
        return SqliteStore.open(target.path, clock=clock, busy_timeout_ms=busy_timeout_ms)
    from bot.store._postgres import PostgresStore  # psycopg is loaded only when it is used

    return PostgresStore.open(target.url, clock=clock)
