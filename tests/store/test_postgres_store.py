"""What only the PostgreSQL backend promises: migrations by several processes at once, a version
table, refusing a newer schema, and never committing a transaction the server already aborted."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from bot.store import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    OutboxMessage,
    SchemaTooNew,
    StoreError,
)
from bot.store._migrations import load_migrations
from bot.store.postgres import PostgresStore, connect, schema_version

from .postgres import Databases

if TYPE_CHECKING:
    from conftest import Make

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


class RoundTrips:
    """Counts round trips to the server: a pipeline block is one, so is a statement run outside
    of one (psycopg's Connection.execute and pipeline, wrapped for the test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._in_pipeline = 0
        execute, pipeline = psycopg.Connection.execute, psycopg.Connection.pipeline
        trips = self

        def counted_execute(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if not trips._in_pipeline:
                trips.count += 1
            return execute(conn, *args, **kwargs)

        @contextmanager
        def counted_pipeline(conn: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            trips.count += 1
            trips._in_pipeline += 1
            try:
                with pipeline(conn, *args, **kwargs) as block:
                    yield block
            finally:
                trips._in_pipeline -= 1

        monkeypatch.setattr(psycopg.Connection, "execute", counted_execute)
        monkeypatch.setattr(psycopg.Connection, "pipeline", counted_pipeline)

    def since(self, before: int) -> int:
        return self.count - before


def test_what_a_turn_reads_together_and_writes_unread_costs_one_round_trip_each(
    pg_databases: Databases, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round trips a turn saves on PostgreSQL (each a server's answer waited for): the
    start (chat lock, update id, conversation, the chat's waiting album) is one, the album
    check after it none, the rules' history one, and the ticket's event, the conversation's
    update, a reply and the commit one together."""
    url = pg_databases.create()
    key = ConversationKey("telegram", "1001")
    with PostgresStore.open(url) as store:
        with store.unit_of_work() as uow:
            ticket = make.seed_ticket(uow)
            conv = uow.save_conversation(Conversation(key=key, flow="apply", state="start"))
        trips = RoundTrips(monkeypatch)
        with store.unit_of_work() as uow:
            before = trips.count
            uow.lock_chat(key.channel, key.user_id)
            new, read = uow.mark_processed_and_read("tg:1", AT, key)
            assert (new, read) == (True, conv)
            assert trips.since(before) == 1
            before = trips.count
            assert uow.pending_album(key.channel, key.user_id) is None
            assert trips.since(before) == 0
            history = uow.history_reads(ticket.customer_id, ticket.order_id)
            assert [t.ticket_no for t in history.tickets] == [ticket.ticket_no]
            assert trips.since(before) == 1
            before = trips.count
            uow.record_event(make.event(ticket.ticket_no))
            uow.save_conversation(dataclasses.replace(read, state="pick_order"))
            uow.queue(OutboxMessage("telegram", "1001", {"text": "hi"}, created_at=AT))
        assert trips.since(before) == 1  # sent with the COMMIT
        with store.unit_of_work() as uow:
            stored = uow.conversation(key)
            assert stored is not None and (stored.state, stored.version) == ("pick_order", 2)
            assert len(uow.events_of(ticket.ticket_no)) == 1
    pg_databases.drop(url)


def test_a_unit_of_work_failing_in_its_commit_leaves_its_connection_usable(
    pg_databases: Databases,
) -> None:
    """A failure among the statements sent with the COMMIT (here a stale conversation) skips
    the rest; one of them may have been due for psycopg's automatic preparation (its sixth use
    on the connection) and counted as prepared though the server never saw it. The rollback
    forgets that: the connection's later units of work run (it once failed them all)."""
    url = pg_databases.create()
    key = ConversationKey("telegram", "42")

    def turn(store: PostgresStore, update: str, conv: Conversation, state: str) -> Conversation:
        with store.unit_of_work() as uow:
            uow.lock_chat(key.channel, key.user_id)
            uow.mark_processed_and_read(update, AT, key)
            saved = uow.save_conversation(dataclasses.replace(conv, state=state))
            uow.queue(OutboxMessage("telegram", "42", {"text": state}, created_at=AT))
        return saved

    with PostgresStore.open(url, min_size=1, max_size=1) as store:  # one connection: the same
        with store.unit_of_work() as uow:
            first = conv = uow.save_conversation(Conversation(key=key, flow="apply", state="s"))
        with pytest.raises(RuntimeError), store.unit_of_work() as uow:  # a rolled-back turn
            uow.conversation(key)
            raise RuntimeError("refused")
        for n in range(4):
            conv = turn(store, f"tg:{n}", conv, f"s{n}")
        with pytest.raises(ConcurrentUpdate):  # the reply's INSERT and COMMIT: a sixth use
            turn(store, "tg:stale", first, "stale")
        for n in range(5):
            conv = turn(store, f"tg:after{n}", conv, f"a{n}")
        with store.unit_of_work() as uow:
            assert uow.conversation(key) == conv
            assert len(uow.pending_outbox()) == 4 + 5
    pg_databases.drop(url)
