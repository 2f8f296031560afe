"""What only the PostgreSQL backend promises: migrations by several processes at once, a version
table, refusing a newer schema, and never committing a transaction the server already aborted."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest

from bot.store import OutboxMessage, SchemaTooNew, StoreError
from bot.store._migrations import load_migrations
from bot.store.postgres import PostgresStore, connect, schema_version

from .postgres import Databases

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_two_processes_opening_an_empty_database_at_once_migrate_it_once(
    pg_databases: Databases,
) -> None:
    url = pg_databases.create(migrated=False)
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def open_it() -> None:
        try:
            start.wait()
            opened.append(PostgresStore.open(url, max_size=1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert errors == []
        assert len(opened) == 3
        with connect(url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert [v[0] for v in versions] == [m.version for m in load_migrations("postgresql")]
        assert opened[0].schema_version == len(load_migrations("postgresql"))
    finally:
        for store in opened:
            store.close()
        pg_databases.drop(url)


def test_a_database_from_a_newer_program_is_refused(pg_databases: Databases) -> None:
    url = pg_databases.create()
    with connect(url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
        assert schema_version(conn) == 999
    with pytest.raises(SchemaTooNew, match="999"):
        PostgresStore.open(url)
    pg_databases.drop(url)


def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    with pytest.raises(StoreError, match="cannot reach the database"):
        PostgresStore.open("postgresql://postgres@127.0.0.1:1/nothing")


def test_a_transaction_the_server_aborted_is_not_reported_as_committed(
    pg_databases: Databases,
) -> None:
    url = pg_databases.create()
    with PostgresStore.open(url) as store:
        with pytest.raises(StoreError, match="nothing was committed"), store.unit_of_work() as uow:
            uow.mark_processed("written before the failure", AT)
            with pytest.raises(psycopg.errors.DivisionByZero):
                uow._run("SELECT 1 / 0")  # type: ignore[attr-defined]  # not a store error
        with store.unit_of_work() as uow:
            assert uow.mark_processed("written before the failure", AT) is True  # rolled back
    pg_databases.drop(url)


def test_moments_come_back_in_utc_whatever_the_server_zone(pg_databases: Databases) -> None:
    url = pg_databases.create()
    name = url.rsplit("/", 1)[1]
    with connect(url) as conn:
        conn.execute(f"ALTER DATABASE {name} SET timezone TO 'Asia/Shanghai'")
    with PostgresStore.open(url) as store:
        with store.unit_of_work() as uow:
            saved = uow.enqueue(
                OutboxMessage(channel="telegram", recipient="1", payload={}, created_at=AT)
            )
        with store.unit_of_work() as uow:
            (pending,) = uow.pending_outbox()
    assert pending == saved
    assert pending.created_at is not None
    assert pending.created_at.tzinfo is UTC
    pg_databases.drop(url)
