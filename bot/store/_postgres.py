"""The PostgreSQL store: psycopg 3 connections from a pool, one transaction per unit of work.

The SQL is bot/store/_sql.py's, spelled by `PostgresDialect`. Connections run in autocommit mode
and the store says BEGIN / COMMIT / ROLLBACK itself, as on SQLite; each unit of work borrows one
connection from the pool for its whole transaction, so units of work in several threads (or
several processes) run at once, at READ COMMITTED. What that isolation level alone would let slip
is locked where it is checked: the refund cap locks its order row in the cap triggers; one open
ticket per order, unique ticket numbers and payout keys are unique indexes, which make a second
writer wait for the first and then fail (or, for `ON CONFLICT`, see its row). Versioned updates
re-check the version on the row they waited for: ConcurrentUpdate. Deadlocks and serialization
failures become ConcurrentUpdate as well: the turn is retried like any other lost race.

Round trips, not SQL, are most of a unit of work's time here (≈ 130 µs each over TCP on one
machine): statements whose results nobody reads (BEGIN, the chat lock, savepoints, funnel steps,
queued replies) wait and travel with the next statement or the COMMIT in psycopg's pipeline mode,
and an error among them comes up with that statement (and commits nothing). The outbox lease takes
its lock and reads the queue in one round trip, and commits its delivery records with the unlock.

Sessions run in UTC so `timestamptz` values come back in UTC; `json` values come back as the text
that was written (decoded by the row mappers, exactly as on SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import Connection, pq
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.clock import Clock, SystemClock
from bot.store._dialect import PostgresDialect
from bot.store._interface import Lease, OpenedRecipient, OutboxMessage, StoreBusy, StoreError
from bot.store._migrations import Migration, check_version, load_migrations
from bot.store._sql import (
    MARK_SENT,
    Cursor,
    Deferred,
    Params,
    SqlStore,
    SqlUnitOfWork,
    open_recipient_query,
    send_pipelined,
)

log = logging.getLogger(__name__)

PgConnection = Connection[tuple[Any, ...]]

# pg_advisory_xact_lock key of migrations: two processes opening a fresh database take turns
_MIGRATION_LOCK: Final = 0x7265_6675_6E64  # "refund"
POOL_TIMEOUT_S: Final = 30.0
# a lock (a row, a chat's advisory lock) not granted within this fails the statement: StoreBusy,
# which the adapter retries with backoff, instead of a turn hanging behind a stuck transaction
LOCK_TIMEOUT: Final = "5s"
_LEASE_TRY = "SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"
_LEASE_FREE = "SELECT pg_advisory_unlock(hashtextextended(:key, 0))"


class _QuietPipelineExit(logging.Filter):
    """psycopg logs a WARNING when a pipeline whose statement failed is closed; the store raises
    that failure itself (often an expected one: OpenTicketExists, ConcurrentUpdate...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietPipelineExit())


def configure(conn: PgConnection) -> None:
    """Session settings of every connection of the store (and of `db` commands). READ
    COMMITTED whatever the server's default: the outbox lease reads after its lock, on a
    snapshot of that statement's own."""
    conn.execute("SET default_transaction_isolation = 'read committed'")
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    conn.adapters.register_loader("json", TextLoader)


def connect(dsn: str) -> PgConnection:
    """One autocommit connection set up like the store's (for migrations, checks, copies)."""
    conn = psycopg.connect(dsn, autocommit=True)
    configure(conn)
    return conn


def schema_version(conn: PgConnection) -> int:
    """The last migration applied to the database (0: none, or not a store's database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(conn: PgConnection, migrations: Sequence[Migration]) -> list[int]:
    """Apply the pending migrations in one transaction (DDL is transactional in PostgreSQL);
    return the versions applied. `conn` must be in autocommit mode."""
    latest = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current == latest:
        return []  # the usual case: nothing locked, nothing written
    check_version(current, migrations)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = schema_version(conn)  # again, under the lock: another process may have been
        check_version(current, migrations)
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(statement.encode())  # bytes: a script, no parameters to look for
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied


class PostgresStore(SqlStore[PgConnection]):
    """The store in one PostgreSQL database. Build it with `PostgresStore.open(dsn)`."""

    def __init__(self, pool: ConnectionPool[PgConnection], clock: Clock) -> None:
        """Wrap an open pool on a migrated database; use `open` instead."""
        super().__init__(PostgresDialect(), clock)
        self._pool = pool

    @classmethod
    def open(
        cls, dsn: str, *, clock: Clock | None = None, min_size: int = 1, max_size: int = 16
    ) -> PostgresStore:
        """Connect to the database at `dsn` (a `postgresql://` URL), migrate it, and keep a pool
        of `min_size`..`max_size` connections. StoreError when it cannot be reached."""
        try:
            with connect(dsn) as conn:
                migrate(conn, load_migrations("postgresql"))
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot reach the database: {exc}".strip()) from exc
        pool: ConnectionPool[PgConnection] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=configure,
            timeout=POOL_TIMEOUT_S,
            open=False,
            name="refund-bot",
        )
        pool.open(wait=True)
        return cls(pool, clock or SystemClock())

    @property
    def schema_version(self) -> int:
        """The schema version of the database (the number of the last migration applied)."""
        with self._pool.connection() as conn:
            return schema_version(conn)

    def _acquire(self) -> PgConnection:
        try:
            return self._pool.getconn()
        except PoolTimeout as exc:
            raise StoreBusy(f"no database connection free after {POOL_TIMEOUT_S:g} s") from exc

    def _release(self, conn: PgConnection) -> None:
        self._pool.putconn(conn)

    def lease(self, name: str) -> AbstractContextManager[Lease | None]:
        """A session advisory lock on a pooled connection of its own, held for the block: the
        lease's reads and records run on that connection, autocommitted (a record with the next
        read, or with the unlock: a delivery is recorded before the lease is let go). A crashed
        holder's connection closes and PostgreSQL frees the lock."""
        return self._lease_only(name)

    @contextmanager
    def _lease_only(self, name: str) -> Iterator[Lease | None]:
        with self._advisory_lease(name, None) as (lease, _):
            yield lease

    @contextmanager
    def recipient_lease(
        self, channel: str, recipient: str, limit: int
    ) -> Iterator[OpenedRecipient | None]:
        """The lock and the first read in one round trip: the server runs the read after the
        lock is granted, on a snapshot of its own (READ COMMITTED), so it sees every delivery
        the previous holder recorded; without the lock the rows are thrown away."""
        query = open_recipient_query(limit, channel, recipient)
        with self._advisory_lease(f"outbox:{channel}:{recipient}", query) as (lease, found):
            if lease is None or found is None:
                yield None
            else:
                yield OpenedRecipient(lease, *lease.work.opened(found))

    @contextmanager
    def _advisory_lease(
        self, name: str, first: tuple[str, Params] | None
    ) -> Iterator[tuple[_PgLease | None, Cursor | None]]:
        conn = self._acquire()
        key: Params = {"key": f"lease:{name}"}
        held = False
        work = SqlUnitOfWork(conn, self.dialect, self._clock)  # autocommit: no BEGIN
        try:
            try:
                found = work._run_together([(_LEASE_TRY, key), *([first] if first else [])])
            except BaseException:
                # the lock may have been granted before the read with it failed: a closed
                # session holds no lock (the pool drops the connection)
                conn.close()
                raise
            held = bool(found[0].fetchone()[0])
            yield (_PgLease(work), found[-1] if first else None) if held else (None, None)
        finally:
            if held and not conn.closed:
                self._let_go(conn, work, name, key)
            self._release(conn)

    def _let_go(self, conn: PgConnection, work: SqlUnitOfWork, name: str, key: Params) -> None:
        """The deliveries recorded but not yet sent committed, then the lock let go: one round
        trip (the server commits before it unlocks)."""
        records = work._take_deferred()
        free: tuple[str, Params | None] = (self.dialect.sql(_LEASE_FREE), key)
        statements = [("BEGIN", None), *records, ("COMMIT", None), free] if records else [free]
        try:
            send_pipelined(conn, statements)
        except psycopg.Error as exc:  # the connection broke, or a record failed: drop the
            # connection, which lets go of the lock (what was not recorded is sent again)
            log.warning(
                "lease %s: records or unlock failed (%s); its connection is dropped", name, exc
            )
            conn.close()

    def _in_transaction(self, conn: PgConnection) -> bool:
        return conn.info.transaction_status in (
            pq.TransactionStatus.INTRANS,
            pq.TransactionStatus.INERROR,
        )

    def _rollback(self, conn: PgConnection) -> None:
        if self._in_transaction(conn):
            # psycopg's rollback(), not a ROLLBACK statement: it also forgets the statements it
            # counts as prepared on this connection (and deallocates them). A statement reaching
            # psycopg's prepare threshold inside a pipeline that failed before it is counted as
            # prepared though the server skipped it; kept, every later use of it on this pooled
            # connection would fail ("prepared statement does not exist").
            conn.rollback()

    def _commit(self, conn: PgConnection, deferred: Deferred) -> None:
        if deferred == [(self.dialect.begin, None)]:
            return  # nothing was run: the transaction never began
        if conn.info.transaction_status == pq.TransactionStatus.INERROR:
            # PostgreSQL would answer COMMIT with ROLLBACK, silently: say so instead
            raise StoreError("a statement of this unit of work failed; nothing was committed")
        # what the unit of work deferred rides with the COMMIT: a failure among it commits nothing
        send_pipelined(conn, [*deferred, ("COMMIT", None)])

    def _execute_many(self, conn: PgConnection, sql: str, params: Sequence[Params]) -> None:
        with conn.cursor() as cur:
            cur.executemany(sql, params)

    def _close(self) -> None:
        self._pool.close()


class _PgLease:
    """What a lease holder reads and records, on the lease's own connection, autocommitted."""

    def __init__(self, work: SqlUnitOfWork) -> None:
        self._work = work

    def pending_outbox(
        self, limit: int = 100, channel: str | None = None, recipient: str | None = None
    ) -> list[OutboxMessage]:
        return self._work.pending_outbox(limit, channel, recipient)

    @property
    def work(self) -> SqlUnitOfWork:
        return self._work

    def record_sent(self, outbox_id: int, at: datetime) -> None:
        # sent with the lease's next read, or committed before the lock is let go (_let_go)
        self._work._defer(MARK_SENT, {"at": self._work._d.ts(at), "id": outbox_id})

    def open_recipient(
        self, limit: int, channel: str, recipient: str
    ) -> tuple[list[OutboxMessage], bool]:
        return self._work.open_recipient(limit, channel, recipient)

    def set_reply_keyboard(self, channel: str, recipient: str, shown: bool) -> None:
        self._work._send_deferred()  # the delivery records first, committed on their own
        self._work.set_reply_keyboard(channel, recipient, shown)
