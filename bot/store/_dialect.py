"""What differs between the databases the store runs on, and nothing else.

The SQL of the store is written once (bot/store/_sql.py) with named parameters (`:name`),
`ON CONFLICT` and `RETURNING`, which SQLite ≥ 3.35 and PostgreSQL both understand. A dialect says:

* how a statement's parameters are spelled (SQLite takes `:name` as written; psycopg wants
  `%(name)s`), translated once per statement text and cached;
* how values travel: moments (UTC ISO-8601 text on SQLite, `timestamptz` on PostgreSQL), dates
  (text / `date`); JSON is text on both sides (PostgreSQL's `json` keeps the text as written);
  booleans go in as Python bools (SQLite stores 0/1) and come back through `bool()`;
* how a write transaction begins (SQLite: `BEGIN IMMEDIATE`, the file's one write lock up front;
  PostgreSQL: `BEGIN` at READ COMMITTED, with the rows a rule depends on locked where the rule is
  checked: the refund cap locks its order row, see migrations/postgresql/0001_initial.sql);
* whether statements nobody reads the result of may wait and travel with the next one, in one
  round trip (PostgreSQL, through psycopg's pipeline mode: BEGIN, the chat lock, savepoints);
* whether a statement whose error the caller may catch needs a savepoint (PostgreSQL aborts the
  whole transaction on an error; SQLite undoes only the failed statement);
* how the database's errors become the store's own (OpenTicketExists, RefundExceedsCashPaid,
  NotFound, ConcurrentUpdate, StoreError, and StoreBusy for "the database is locked / a lock
  was not granted in time", which a caller may retry after a pause);
* the locks that coordinate several processes (a per-chat transaction lock, a per-recipient
  try-lock): real on PostgreSQL, nothing to do on SQLite, whose one writer at a time already
  serialises every unit of work.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import ClassVar

from bot.store._interface import (
    ConcurrentUpdate,
    NotFound,
    OpenTicketExists,
    RefundExceedsCashPaid,
    StoreBusy,
    StoreError,
)

# The names of what the schema enforces, the same in both databases' migrations.
OPEN_TICKET_INDEX = "tickets_one_open_per_order"
REFUND_CAP = "refund_exceeds_cash_paid"


def check_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime where an aware one is required: {moment!r}")
    return moment


@lru_cache(maxsize=64)  # a turn stamps the same few moments several times
def _utc_text(moment: datetime, fold: int) -> str:
    check_aware(moment)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class Dialect(ABC):
    """One database's spelling of the store's SQL, values and errors."""

    name: ClassVar[str]
    begin: ClassVar[str]  # the statement that opens a unit of work
    savepoints: ClassVar[bool]  # a caught error needs a savepoint to leave the transaction usable
    translates: ClassVar[bool]  # False: `sql` returns its statement unchanged
    # statements whose results nobody reads are held and sent with the next one, in one round
    # trip (a database across a socket); False: every statement runs when it is called
    pipelines: ClassVar[bool]

    @abstractmethod
    def sql(self, text: str) -> str:
        """The statement with its `:name` parameters in this database's style."""

    # values

    @abstractmethod
    def ts(self, moment: datetime) -> object:
        """A timezone-aware moment as a parameter (ValueError for a naive one)."""

    def ts_opt(self, moment: datetime | None) -> object:
        return None if moment is None else self.ts(moment)

    @abstractmethod
    def dt(self, value: object) -> datetime:
        """A stored moment, timezone-aware in UTC."""

    def dt_opt(self, value: object) -> datetime | None:
        return None if value is None else self.dt(value)

    @abstractmethod
    def day(self, day: date | None) -> object:
        """A calendar date as a parameter."""

    @abstractmethod
    def date(self, value: object) -> date | None:
        """A stored calendar date."""

    # errors

    @abstractmethod
    def error(self, exc: Exception) -> StoreError | None:
        """The store's error for a database error, or None when it is not the database's."""

    # locks across processes: SQL that takes them, or None when there is nothing to take

    chat_lock: ClassVar[str | None] = None  # blocks until this transaction holds the chat
    recipient_try_lock: ClassVar[str | None] = None  # one row: whether it got the recipient


class SqliteDialect(Dialect):
    name = "sqlite"
    begin = "BEGIN IMMEDIATE"
    savepoints = False
    translates = False
    pipelines = False  # in process: no round trip to save

    def sql(self, text: str) -> str:
        return text

    def ts(self, moment: datetime) -> str:
        # `fold` in the cache key: two local times an hour apart in a DST overlap compare equal
        return _utc_text(moment, moment.fold)

    def dt(self, value: object) -> datetime:
        return datetime.fromisoformat(value)  # type: ignore[arg-type]  # 'Z' parses to UTC

    def dt_opt(self, value: object) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)  # type: ignore[arg-type]

    def day(self, day: date | None) -> str | None:
        return None if day is None else day.isoformat()

    def date(self, value: object) -> date | None:
        return None if value is None else date.fromisoformat(value)  # type: ignore[arg-type]

    def error(self, exc: Exception) -> StoreError | None:
        import sqlite3

        if isinstance(exc, sqlite3.OperationalError) and _SQLITE_BUSY.search(str(exc)):
            return StoreBusy(f"the database is locked by another connection: {exc}")
        if not isinstance(exc, sqlite3.IntegrityError):
            return None
        message = str(exc)
        if REFUND_CAP in message:
            return RefundExceedsCashPaid(
                "the order's pending + paid refunds would exceed its cash paid"
            )
        # Exactly this text: a duplicate ticket number may report "tickets.ticket_no,
        # tickets.order_id" (the composite key), which is a caller bug, not a second open ticket.
        if message == "UNIQUE constraint failed: tickets.order_id":
            return OpenTicketExists("the order already has an open ticket")
        if "FOREIGN KEY" in message:
            return NotFound("a referenced row (customer, order or ticket) does not exist")
        return StoreError(message)


# sqlite3 reports SQLITE_BUSY / SQLITE_LOCKED (past the busy timeout) only in the message text
_SQLITE_BUSY = re.compile(r"database (table )?is (locked|busy)")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=1024)
def _pyformat(text: str) -> str:
    return _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))


class PostgresDialect(Dialect):
    name = "postgresql"
    begin = "BEGIN"  # READ COMMITTED; the rules lock what they depend on (see the module doc)
    savepoints = True
    translates = True
    pipelines = True  # psycopg's pipeline mode: BEGIN, the chat lock, savepoints ride along

    # Both locks are transaction-scoped: they go with COMMIT or ROLLBACK, never outlive a crash.
    chat_lock = "SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"
    recipient_try_lock = "SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"

    def sql(self, text: str) -> str:
        return _pyformat(text)

    def ts(self, moment: datetime) -> datetime:
        return check_aware(moment)

    def dt(self, value: object) -> datetime:
        assert isinstance(value, datetime)  # the session's time zone is UTC: see _postgres
        return value

    def day(self, day: date | None) -> date | None:
        return day

    def date(self, value: object) -> date | None:
        assert value is None or isinstance(value, date)
        return value

    def error(self, exc: Exception) -> StoreError | None:
        from psycopg import errors

        if isinstance(exc, errors.LockNotAvailable | errors.QueryCanceled):
            # lock_timeout / statement_timeout: another transaction held what this one needed
            return StoreBusy(f"a lock was not granted in time: {exc}")
        if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected):
            return ConcurrentUpdate(f"another transaction got there first: {exc}")
        if isinstance(exc, errors.NoDataFound) and "conversation_missing" in str(exc):
            return NotFound(f"no such conversation: {exc}")  # migration 0011
        if isinstance(exc, errors.RaiseException) and REFUND_CAP in str(exc):
            return RefundExceedsCashPaid(
                "the order's pending + paid refunds would exceed its cash paid"
            )
        if isinstance(exc, errors.UniqueViolation) and exc.diag.constraint_name == (
            OPEN_TICKET_INDEX
        ):
            return OpenTicketExists("the order already has an open ticket")
        if isinstance(exc, errors.ForeignKeyViolation):
            return NotFound("a referenced row (customer, order or ticket) does not exist")
        if isinstance(exc, errors.IntegrityError | errors.RaiseException):
            return StoreError(str(exc))
        return None
