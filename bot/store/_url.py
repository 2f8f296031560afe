"""Store URLs: `sqlite:///relative/file.sqlite3`, `sqlite:////absolute/file.sqlite3`,
`sqlite:///:memory:`, and `postgresql://user:password@host:port/database?options` (also
`postgres://`). `open_store(url, clock)` opens the store a URL names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from bot.clock import Clock
from bot.store._interface import Store

SQLITE_PREFIX = "sqlite:///"
_PG_SCHEMES = ("postgresql", "postgres")


class BadStoreUrl(ValueError):
    """A store URL that names no store this program can open."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    kind: Literal["sqlite", "postgresql"]
    url: str  # as given (normalised: a SQLite path made absolute by `resolved`)
    path: Path | None = None  # the SQLite file

    @property
    def masked(self) -> str:
        """The URL with its password replaced by `***`, fit for logs and `check`."""
        return mask(self.url)

    @property
    def shown(self) -> str:
        """How messages name the store: a SQLite file by its path, else the masked URL."""
        return str(self.path) if self.path is not None else self.masked

    def resolved(self, base_dir: Path) -> StoreUrl:
        """A relative SQLite path taken from `base_dir` (the config file's folder)."""
        if self.path is None or self.path.is_absolute() or str(self.path) == ":memory:":
            return self
        path = base_dir / self.path
        return StoreUrl("sqlite", sqlite_url(path), path)


def sqlite_url(path: Path | str) -> str:
    return SQLITE_PREFIX + str(path)


def parse_store_url(text: str) -> StoreUrl:
    """The store a URL names; BadStoreUrl with what is wrong and what is expected."""
    text = text.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme == "sqlite":
        if not text.startswith(SQLITE_PREFIX) or len(text) == len(SQLITE_PREFIX):
            raise BadStoreUrl(
                f"{text!r} is not a SQLite URL: write sqlite:///relative/file.sqlite3 or"
                " sqlite:////absolute/file.sqlite3"
            )
        return StoreUrl("sqlite", text, Path(text[len(SQLITE_PREFIX) :]))
    if scheme in _PG_SCHEMES:
        parts = urlsplit(text)
        if not text.lower().startswith(f"{scheme}://"):
            raise BadStoreUrl(
                f"{mask(text)!r} is not a PostgreSQL URL: write"
                " postgresql://user[:password]@host[:port]/database"
            )
        if not parts.path.strip("/"):
            raise BadStoreUrl(
                f"{mask(text)!r} names no database: write"
                " postgresql://user[:password]@host[:port]/database"
            )
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise BadStoreUrl(f"{mask(text)!r}: the port must be a number") from None
        return StoreUrl("postgresql", text)
    raise BadStoreUrl(
        f"{mask(text)!r} is not a store URL: it must start with sqlite:/// or postgresql://"
    )


def mask(url: str) -> str:
    """`url` with the password (if any) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


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
