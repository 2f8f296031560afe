"""What only the SQLite backend promises: pragmas, migrations, rules kept by the file itself."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

import bot
from bot.clock import FixedClock
from bot.domain import OPEN_STATUSES
from bot.store import Conversation, ConversationKey, OutboxMessage, SchemaTooNew, SqliteStore
from bot.store._migrations import (
    Migration,
    load_migrations,
    migrate,
    schema_version,
    split_statements,
)

if TYPE_CHECKING:
    from conftest import Make

DAY = date(2026, 11, 24)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "store.sqlite3"


@pytest.fixture
def sqlite_store(path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore.open(path)
    yield store
    store.close()


@pytest.fixture
def raw(sqlite_store: SqliteStore, path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the store's file, as any other program would open it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    yield conn
    conn.close()


def _pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


# --- opening -----------------------------------------------------------------------------------


def test_open_creates_the_folder_and_sets_the_pragmas(
    sqlite_store: SqliteStore, path: Path
) -> None:
    assert path.exists()
    conn = sqlite_store._conn
    assert _pragma(conn, "journal_mode") == "wal"
    assert _pragma(conn, "synchronous") == 1  # NORMAL
    assert _pragma(conn, "foreign_keys") == 1
    assert _pragma(conn, "busy_timeout") == 5000
    assert conn.isolation_level is None  # we say BEGIN IMMEDIATE ourselves


def test_wal_is_a_property_of_the_file(sqlite_store: SqliteStore, raw: sqlite3.Connection) -> None:
    assert _pragma(raw, "journal_mode") == "wal"


def test_a_unit_of_work_holds_the_write_lock_from_its_start(
    sqlite_store: SqliteStore, raw: sqlite3.Connection
) -> None:
    raw.execute("PRAGMA busy_timeout = 0")
    # BEGIN IMMEDIATE: even a unit of work that has not written yet blocks other writers.
    with sqlite_store.unit_of_work(), pytest.raises(sqlite3.OperationalError, match="locked"):
        raw.execute("BEGIN IMMEDIATE")
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("ROLLBACK")


def test_in_memory_store_works_for_quick_tests(make: Make) -> None:
    with SqliteStore.open(":memory:") as store:
        with store.unit_of_work() as uow:
            ticket = make.seed_ticket(uow)
        with store.unit_of_work() as uow:
            assert uow.ticket(ticket.ticket_no) == ticket


def test_the_clock_stamps_times_the_caller_left_empty(path: Path) -> None:
    moment = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    with SqliteStore.open(path, clock=FixedClock(moment)) as store, store.unit_of_work() as uow:
        message = uow.enqueue(OutboxMessage(channel="console", recipient="me", payload={}))
        conv = uow.save_conversation(
            Conversation(key=ConversationKey("console", "me"), flow="menu", state="menu")
        )
    assert message.created_at == moment
    assert conv.updated_at == moment


def test_importing_the_store_opens_nothing(tmp_path: Path) -> None:
    code = "import bot.store, bot.store.sqlite, sys; print('sqlite3' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"  # the module is imported ...
    assert list(tmp_path.iterdir()) == []  # ... but no database file appeared


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_are_numbered_from_1_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert versions[0] == 1


def test_open_applies_every_migration_and_reopen_applies_none(path: Path) -> None:
    with SqliteStore.open(path) as store:
        assert store.schema_version == len(load_migrations())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A second run would fail loudly: the scripts use plain CREATE TABLE.
        assert migrate(conn, load_migrations()) == []
        assert schema_version(conn) == len(load_migrations())
    finally:
        conn.close()
    with SqliteStore.open(path) as store:
        assert store.schema_version == len(load_migrations())


def test_only_pending_migrations_run(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        one = Migration(1, "one", ("CREATE TABLE a (x INTEGER)",))
        two = Migration(2, "two", ("CREATE TABLE b (y INTEGER)", "INSERT INTO b VALUES (2)"))
        assert migrate(conn, [one]) == [1]
        assert migrate(conn, [one, two]) == [2]
        assert migrate(conn, [one, two]) == []
        assert conn.execute("SELECT y FROM b").fetchall() == [(2,)]
        assert schema_version(conn) == 2
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        one = Migration(1, "one", ("CREATE TABLE a (x INTEGER)",))
        broken = Migration(2, "broken", ("CREATE TABLE b (y INTEGER)", "NOT SQL"))
        migrate(conn, [one])
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, [one, broken])
        assert schema_version(conn) == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {"a"}
        assert not conn.in_transaction
    finally:
        conn.close()


def test_a_database_from_a_newer_program_is_refused(path: Path) -> None:
    SqliteStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaTooNew, match="999"):
        SqliteStore.open(path)


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """
    -- a comment
    CREATE TABLE t (x INTEGER); -- trailing comment
    CREATE TRIGGER tr BEFORE DELETE ON t
    BEGIN
        SELECT RAISE(ABORT, 'no; really');
    END;
    -- the end
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].rstrip().endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (x INTEGER)")


# --- rules the file enforces whatever code writes to it ------------------------------------------


def test_the_open_ticket_index_lists_exactly_the_domain_open_statuses(
    sqlite_store: SqliteStore, raw: sqlite3.Connection
) -> None:
    sql = raw.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'tickets_one_open_per_order'"
    ).fetchone()[0]
    in_index = set(re.findall(r"'([a-z_]+)'", sql))
    assert in_index == {s.value for s in OPEN_STATUSES}


def test_raw_sql_cannot_open_a_second_ticket_or_overpay(
    sqlite_store: SqliteStore, raw: sqlite3.Connection, make: Make
) -> None:
    with sqlite_store.unit_of_work() as uow:
        make.seed_ticket(uow)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw.execute(
            "INSERT INTO tickets SELECT 'T-2', order_id, customer_id, reason, sub_reason,"
            " 'in_review', priority, requested_fen, approved_fen, quote, review_due, payout_due,"
            " appeal_count, assignee, created_at, updated_at, 1 FROM tickets"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refund_exceeds_cash_paid"):
        raw.execute(
            "INSERT INTO refunds VALUES ('k', 'T20261124-0001', 'O1', 10001, 'wechat', 'paid',"
            " '2026-11-24T02:00:00.000000Z')"
        )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        raw.execute(
            "INSERT INTO refunds VALUES ('k', 'T20261124-0001', 'O1', 100, 'wechat', 'PAID',"
            " '2026-11-24T02:00:00.000000Z')"
        )


def test_the_audit_trail_is_append_only(
    sqlite_store: SqliteStore, raw: sqlite3.Connection, make: Make
) -> None:
    with sqlite_store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.add_event(make.event(ticket.ticket_no))
    with pytest.raises(sqlite3.IntegrityError, match="append_only"):
        raw.execute("UPDATE ticket_events SET actor = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append_only"):
        raw.execute("DELETE FROM ticket_events")
    assert raw.execute("SELECT actor FROM ticket_events").fetchall() == [("customer:1",)]


def test_moments_are_stored_as_sortable_utc_text(
    sqlite_store: SqliteStore, raw: sqlite3.Connection, make: Make
) -> None:
    with sqlite_store.unit_of_work() as uow:
        make.seed_ticket(uow)  # created 2026-11-24 10:30:15.123456 in Shanghai
    created, due = raw.execute("SELECT created_at, review_due FROM tickets").fetchone()
    assert created == "2026-11-24T02:30:15.123456Z"
    assert due == "2026-11-27"
    whole_second = datetime(2026, 11, 24, 2, 30, 15, tzinfo=UTC)
    with sqlite_store.unit_of_work() as uow:
        uow.mark_processed("k", whole_second)
    (at,) = raw.execute("SELECT at FROM processed_updates").fetchone()
    assert at == "2026-11-24T02:30:15.000000Z"  # fixed width: text order is time order
    assert at < created


def test_quote_is_stored_as_json(
    sqlite_store: SqliteStore, raw: sqlite3.Connection, make: Make
) -> None:
    with sqlite_store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
    (text,) = raw.execute("SELECT quote FROM tickets").fetchone()
    assert json.loads(text)["cap_fen"] == ticket.quote.cap_fen


# --- several processes on one file -------------------------------------------------------------

_HAMMER = """
import json, sys
from datetime import date
from bot.store import SqliteStore

store = SqliteStore.open(sys.argv[1])
numbers = []
for _ in range(int(sys.argv[2])):
    with store.unit_of_work() as uow:
        numbers.append(uow.next_ticket_no(date(2026, 11, 24)))
store.close()
print(json.dumps(numbers))
"""


def test_ticket_numbers_are_unique_across_processes(path: Path) -> None:
    per_process, processes = 100, 4
    root = Path(bot.__file__).resolve().parent.parent
    # Each process migrates the fresh file at open too: migrate() must serialise that as well.
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(path), str(per_process)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    numbers: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        numbers.extend(json.loads(out))
    assert len(numbers) == len(set(numbers)) == per_process * processes
    assert sorted(int(n[-4:]) for n in numbers) == list(range(1, per_process * processes + 1))


def test_store_calls_inside_a_unit_of_work_fail_instead_of_hanging(
    sqlite_store: SqliteStore,
) -> None:
    with sqlite_store.unit_of_work():
        with pytest.raises(RuntimeError, match="already open"):
            sqlite_store.close()
        with pytest.raises(RuntimeError, match="already open"):
            _ = sqlite_store.schema_version
    assert sqlite_store.schema_version == len(load_migrations())  # still open and usable


# -- delivery records held for the next unit of work: the failure paths -----------------------


def _queued(store: SqliteStore, text: str = "hi") -> int:
    with store.unit_of_work() as uow:
        message = uow.enqueue(OutboxMessage("telegram", "1", {"text": text}))
    assert message.outbox_id is not None
    return message.outbox_id


def _unsent(raw: sqlite3.Connection) -> int:
    return int(raw.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


class _FailingWrites:
    """The store's connection, its executemany (the held records' write) failing once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failed = False

    def executemany(self, sql: str, params: object) -> sqlite3.Cursor:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.executemany(sql, params)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_held_records_survive_a_failure_to_write_them(
    sqlite_store: SqliteStore, raw: sqlite3.Connection
) -> None:
    sqlite_store.mark_sent_soon([_queued(sqlite_store)], datetime(2026, 11, 24, tzinfo=UTC))
    real = sqlite_store._conn
    sqlite_store._conn = _FailingWrites(real)  # type: ignore[assignment]
    try:
        with pytest.raises(sqlite3.OperationalError), sqlite_store.unit_of_work():
            pass
        assert _unsent(raw) == 1
        sqlite_store.flush()  # the next unit of work writes them after all
    finally:
        sqlite_store._conn = real
    assert _unsent(raw) == 0


def test_close_closes_even_when_the_records_cannot_be_written(
    sqlite_store: SqliteStore, raw: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_store.mark_sent_soon([_queued(sqlite_store)], datetime(2026, 11, 24, tzinfo=UTC))
    raw.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
    real = sqlite_store._conn
    real.execute("PRAGMA busy_timeout = 50")  # ...past a (short) busy timeout
    sqlite_store.close()
    raw.execute("ROLLBACK")
    assert "delivery records not written at close" in caplog.text
    with pytest.raises(RuntimeError, match="closed"), sqlite_store.unit_of_work():
        pass
    assert _unsent(raw) == 1  # not recorded: sent again at the next start (at least once)
    sqlite_store.mark_sent_soon([1], datetime(2026, 11, 24, tzinfo=UTC))  # dropped, with a word
    assert "store closed: 1 delivery record(s) dropped" in caplog.text


def test_moments_an_hour_apart_in_a_dst_overlap_are_stored_apart(
    sqlite_store: SqliteStore, raw: sqlite3.Connection
) -> None:
    new_york = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)  # 05:30 UTC
    second = first.replace(fold=1)  # the same wall time an hour later: 06:30 UTC
    with sqlite_store.unit_of_work() as uow:
        uow.mark_processed("a", first)
        uow.mark_processed("b", second)
    rows = raw.execute("SELECT dedupe_key, at FROM processed_updates ORDER BY 1").fetchall()
    assert rows == [("a", "2026-11-01T05:30:00.000000Z"), ("b", "2026-11-01T06:30:00.000000Z")]


def test_a_version_2_database_upgrades_keeping_its_processed_updates(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, load_migrations()[:2])
        conn.execute("INSERT INTO processed_updates VALUES ('tg:1', '2026-11-01T00:00:00.000000Z')")
    finally:
        conn.close()
    with SqliteStore.open(path) as store:
        assert store.schema_version == len(load_migrations())
        with store.unit_of_work() as uow:
            assert uow.mark_processed("tg:1", datetime(2026, 11, 24, tzinfo=UTC)) is False
            assert uow.forget_processed(datetime(2026, 11, 2, tzinfo=UTC)) == 1
    conn = sqlite3.connect(path)
    try:
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    finally:
        conn.close()
    assert "processed_updates_at" not in indexes
