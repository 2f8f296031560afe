"""The SQLite store: one WAL file, one connection per store, one transaction per unit of work.

The SQL is bot/store/_sql.py's, spelled by `SqliteDialect`; this module opens the file. Moments are
stored as UTC ISO-8601 text with microseconds ('2026-11-24T02:03:04.000000Z'), so text order is
time order; dates are 'YYYY-MM-DD'. Every unit of work is a `BEGIN IMMEDIATE` transaction: it
takes the write lock up front, so two writers queue on `busy_timeout` instead of one failing when
it upgrades a read lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bot.clock import Clock, SystemClock
from bot.store._dialect import SqliteDialect
from bot.store._interface import StoreError
from bot.store._migrations import load_migrations, migrate, schema_version
from bot.store._sql import Deferred, Params, SqlStore, SqlUnitOfWork

BUSY_TIMEOUT_MS: Final = 5000
_MEMORY = ":memory:"

SqliteUnitOfWork = SqlUnitOfWork  # the name this module has always exported


class SqliteStore(SqlStore[sqlite3.Connection]):
    """The store in one SQLite file. Build it with `SqliteStore.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        """Wrap an open, migrated connection in autocommit mode; use `open` instead."""
        super().__init__(SqliteDialect(), clock)
        self._conn = conn
        # One connection, one transaction at a time: threads take turns for a whole unit of work.
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        clock: Clock | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> SqliteStore:
        """Open (creating it and its folder if needed) and migrate the database at `path`.

        `":memory:"` gives a private in-memory database (no WAL), handy for tests. `clock`
        stamps the times a caller leaves empty; the system clock by default. A unit of work
        that waits `busy_timeout_ms` for another connection's write lock fails with StoreBusy.
        """
        if sqlite3.sqlite_version_info < (3, 37, 0):  # STRICT tables, RETURNING, UPSERT
            raise StoreError(
                f"SQLite >= 3.37 is required, this Python has {sqlite3.sqlite_version}"
            )
        memory = str(path) == _MEMORY
        if not memory:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT / ROLLBACK ourselves
            check_same_thread=False,  # guarded by the store's lock instead
            cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if not memory and str(mode).lower() != "wal":
                raise StoreError(f"could not switch {path} to WAL (journal mode is {mode!r})")
            # WAL + NORMAL: a commit survives a process crash; only an OS crash or power loss may
            # lose the last commits, never corrupt the file. fsync per turn would cost ~ms.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, load_migrations())
        except BaseException:
            conn.close()
            raise
        return cls(conn, clock or SystemClock())

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (the number of the last migration applied)."""
        self._refuse_reentry("read the schema version")
        with self._lock:
            self._check_open()
            return schema_version(self._conn)

    def _acquire(self) -> sqlite3.Connection:
        self._lock.acquire()
        return self._conn

    def _release(self, conn: sqlite3.Connection) -> None:
        self._lock.release()

    def _in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def _commit(self, conn: sqlite3.Connection, deferred: Deferred) -> None:
        assert not deferred  # SqliteDialect.pipelines is False: nothing is ever deferred
        conn.execute("COMMIT")

    def _execute_many(self, conn: sqlite3.Connection, sql: str, params: Sequence[Params]) -> None:
        conn.executemany(sql, params)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()
