"""Store contract under concurrency: what the database enforces holds when two connections race.

Each racer has its own store (its own connection), as two worker processes would. On PostgreSQL
the racers meet *inside* their transactions, after both have read what the rule depends on, so
READ COMMITTED alone would let both through; SQLite's BEGIN IMMEDIATE lets only one writer in at a
time, so there the racers meet just before they begin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from bot.domain import RefundState, TicketStatus
from bot.store import (
    ConcurrentUpdate,
    ConversationKey,
    OpenTicketExists,
    OutboxMessage,
    RefundExceedsCashPaid,
    Store,
    StoreError,
    UnitOfWork,
)

if TYPE_CHECKING:
    from conftest import Make, OpenStore

Racer = Callable[[UnitOfWork, Callable[[], None]], object]


def race(backend: str, stores: list[Store], racers: list[Racer]) -> list[object]:
    """Run each racer in its own thread and unit of work; what each returned or raised."""
    meet = threading.Barrier(len(racers), timeout=10)
    inside = backend == "postgresql"
    results: list[object] = [None] * len(racers)

    def run(index: int) -> None:
        try:
            if not inside:
                meet.wait()
            with stores[index].unit_of_work() as uow:
                results[index] = racers[index](uow, meet.wait if inside else lambda: None)
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def _seed(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)  # order O1: cash paid ¥100, one open ticket


def test_two_approvals_at_once_over_the_cash_paid_one_wins(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    _seed(a, make)
    seen: list[int] = []

    def approve(key: str) -> Racer:
        def racer(uow: UnitOfWork, meet: Callable[[], None]) -> object:
            seen.append(uow.refunded_fen("O1"))
            meet()
            return uow.add_refund(make.refund(key, 6_000))

        return racer

    results = race(backend, [a, b], [approve("k1"), approve("k2")])
    if backend == "postgresql":
        assert seen == [0, 0]  # both saw room for ¥60 before either wrote
    assert sorted(type(r).__name__ for r in results) == ["RefundExceedsCashPaid", "bool"]
    assert True in results
    with a.unit_of_work() as uow:
        assert uow.refunded_fen("O1") == 6_000
        assert len(uow.refunds_of_order("O1")) == 1


def test_two_failed_payouts_retried_at_once_over_the_cash_paid_one_wins(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    with a.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("k1", 6_000, state=RefundState.FAILED))
        uow.add_refund(make.refund("k2", 6_000, state=RefundState.FAILED))
    seen: list[int] = []

    def retry(key: str) -> Racer:
        def racer(uow: UnitOfWork, meet: Callable[[], None]) -> object:
            seen.append(uow.refunded_fen("O1"))
            meet()
            uow.set_refund_state(key, RefundState.PENDING)
            return key

        return racer

    results = race(backend, [a, b], [retry("k1"), retry("k2")])
    if backend == "postgresql":
        assert seen == [0, 0]
    assert len([r for r in results if isinstance(r, RefundExceedsCashPaid)]) == 1
    with a.unit_of_work() as uow:
        assert uow.refunded_fen("O1") == 6_000


def test_two_tickets_for_one_order_at_once_one_wins(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    with a.unit_of_work() as uow:
        _, customer = make.seed(uow)

    seen: list[int] = []

    def submit(number: str) -> Racer:
        def racer(uow: UnitOfWork, meet: Callable[[], None]) -> object:
            seen.append(len(uow.tickets_of_order("O1")))
            meet()
            uow.add_ticket(make.ticket(number, customer.customer_id))
            return number

        return racer

    results = race(backend, [a, b], [submit("T20261124-0001"), submit("T20261124-0002")])
    if backend == "postgresql":
        assert seen == [0, 0]
    assert len([r for r in results if isinstance(r, OpenTicketExists)]) == 1
    numbers = [r for r in results if isinstance(r, str)]
    assert len(numbers) == 1
    with a.unit_of_work() as uow:
        assert [t.ticket_no for t in uow.open_tickets()] == numbers


def test_one_payout_key_recorded_twice_at_once_is_one_payout(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    _seed(a, make)

    def pay(uow: UnitOfWork, meet: Callable[[], None]) -> object:
        meet()
        return uow.add_refund(make.refund("T20261124-0001/payout/0", 8_000))

    results = race(backend, [a, b], [pay, pay])
    assert sorted(results, key=str) == [False, True]
    with a.unit_of_work() as uow:
        assert uow.refunded_fen("O1") == 8_000


def test_two_agents_moving_one_ticket_at_once_one_wins(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    _seed(a, make)

    def move(status: TicketStatus) -> Racer:
        def racer(uow: UnitOfWork, meet: Callable[[], None]) -> object:
            ticket = uow.ticket("T20261124-0001")
            assert ticket is not None
            meet()
            return uow.update_ticket(ticket.model_copy(update={"status": status}))

        return racer

    results = race(backend, [a, b], [move(TicketStatus.IN_REVIEW), move(TicketStatus.WITHDRAWN)])
    if backend == "sqlite":  # one after the other: the second read the first's version
        assert not any(isinstance(r, BaseException) for r in results)
    else:
        assert len([r for r in results if isinstance(r, ConcurrentUpdate)]) == 1
    with a.unit_of_work() as uow:
        stored = uow.ticket("T20261124-0001")
        assert stored is not None
        assert stored.version == 1 + sum(not isinstance(r, BaseException) for r in results)


def test_the_chat_lock_makes_a_second_turn_of_the_chat_wait(
    backend: str, open_store: OpenStore
) -> None:
    a, b = open_store(), open_store()
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with a.unit_of_work() as uow:
            uow.lock_chat("telegram", "1001")
            uow.pending_outbox(1)  # the lock is taken with the next statement
            holding.set()
            threading.Event().wait(0.3)
            order.append("first ends")

    def second() -> None:
        holding.wait(5)
        with b.unit_of_work() as uow:
            uow.lock_chat("telegram", "1001")
            uow.pending_outbox(1)
            order.append("second holds")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    # SQLite: the second unit of work cannot even begin while the first holds the write lock
    assert order == ["first ends", "second holds"]


def test_the_recipient_try_lock_is_refused_while_another_holds_it(
    backend: str, open_store: OpenStore
) -> None:
    a, b = open_store(), open_store()
    with a.unit_of_work() as uow:
        assert uow.try_lock_recipient("telegram", "1001") is True
        if backend == "postgresql":  # SQLite has one writer at a time: nothing to try
            with b.unit_of_work() as other:
                assert other.try_lock_recipient("telegram", "1001") is False
                assert other.try_lock_recipient("telegram", "1002") is True
    with b.unit_of_work() as other:  # released with the commit
        assert other.try_lock_recipient("telegram", "1001") is True


def test_a_deadlock_between_two_turns_is_a_concurrent_update(
    backend: str, open_store: OpenStore, make: Make
) -> None:
    a, b = open_store(), open_store()
    with a.unit_of_work() as uow:
        t1 = make.seed_ticket(uow)
        t2 = make.ticket("T20261124-0002", t1.customer_id, "O2")
        uow.upsert_order(make.order("O2"))
        uow.add_ticket(t2)

    def crosswise(first: str, then: str) -> Racer:
        def racer(uow: UnitOfWork, meet: Callable[[], None]) -> object:
            for number in (first, then):
                ticket = uow.ticket(number)
                assert ticket is not None
                uow.update_ticket(ticket.model_copy(update={"assignee": 7}))
                if number == first:
                    meet()
            return "done"

        return racer

    results = race(
        backend,
        [a, b],
        [crosswise(t1.ticket_no, t2.ticket_no), crosswise(t2.ticket_no, t1.ticket_no)],
    )
    if backend == "sqlite":  # one writer at a time: SQLite units of work cannot deadlock
        assert results == ["done", "done"]
        return
    assert "done" in results
    assert len([r for r in results if isinstance(r, ConcurrentUpdate)]) == 1
    assert all(not isinstance(r, BaseException) or isinstance(r, StoreError) for r in results)


def test_a_recipient_lease_reads_what_the_previous_holder_recorded(
    backend: str, open_store: OpenStore
) -> None:
    """The lease and its first read travel together (PostgreSQL): the read still sees every
    delivery the previous holder recorded before it let go, and a refused lease reads nothing."""
    a, b = open_store(), open_store()
    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    with a.unit_of_work() as uow:
        for key in ("k0", "k1", "k2"):
            uow.enqueue(OutboxMessage("telegram", "1001", {"key": key}, created_at=at))
    with a.recipient_lease("telegram", "1001", 10) as opened:
        assert opened is not None
        assert [m.payload["key"] for m in opened.pending] == ["k0", "k1", "k2"]
        for message in opened.pending[:2]:
            assert message.outbox_id is not None
            opened.lease.record_sent(message.outbox_id, at)
        if backend == "postgresql":  # one process on SQLite: nobody else to refuse
            with b.recipient_lease("telegram", "1001", 10) as refused:
                assert refused is None
            with b.recipient_lease("telegram", "2002", 10) as other:
                assert other is not None and other.pending == []
    a.flush()  # SQLite: the records ride on the next unit of work
    with b.recipient_lease("telegram", "1001", 10) as opened:
        assert opened is not None
        assert [m.payload["key"] for m in opened.pending] == ["k2"]
        assert opened.reply_keyboard is False


def test_a_deferred_statement_that_fails_commits_nothing(open_store: OpenStore) -> None:
    """PostgreSQL sends a funnel step with the next statement or the COMMIT: its failure still
    fails the unit of work, and nothing of it is stored."""
    store = open_store()
    key = ConversationKey("telegram", "1001")
    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    with pytest.raises(StoreError), store.unit_of_work() as uow:
        uow.upsert_customer("+8613900000001", "张三")
        uow.record_funnel(key, None, at)  # type: ignore[arg-type]  # NOT NULL: refused
    with store.unit_of_work() as uow:
        assert uow.customer_by_phone("+8613900000001") is None
        assert uow.funnel(at, at + timedelta(seconds=1)) == {}


def test_a_recipient_lease_whose_read_fails_lets_go_of_the_lock(
    backend: str, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock and the read travel together: a read that fails after the lock was granted
    must not leave the lock with a pooled connection (no worker could deliver there again)."""
    import sqlite3

    import psycopg

    import bot.store._postgres as postgres
    import bot.store._sql as sql

    a, b = open_store(), open_store()
    broken = ("SELECT * FROM no_such_table WHERE :limit > 0", {"limit": 1})
    for module in (postgres, sql):
        monkeypatch.setattr(module, "open_recipient_query", lambda *_: broken)
    refused = (sqlite3.OperationalError, psycopg.errors.UndefinedTable)
    with pytest.raises(refused), a.recipient_lease("telegram", "1001", 10):
        pass
    monkeypatch.undo()
    with b.recipient_lease("telegram", "1001", 10) as opened:
        assert opened is not None
    with a.recipient_lease("telegram", "1001", 10) as opened:  # and on the first store again
        assert opened is not None


async def test_a_delivery_reserved_for_a_turn_that_never_delivers_is_let_go(
    open_store: OpenStore,
) -> None:
    """A turn cancelled after its thread opened the chat's delivery, or before it did: either
    way the recipient's lease is let go, and another worker can deliver there."""
    from bot.clock import FixedClock
    from bot.telegram._outbox import Outbox

    a, b = open_store(), open_store()
    outbox = Outbox(a, FixedClock(datetime(2026, 11, 24, 2, 0, tzinfo=UTC)))

    async def free_for_another() -> bool:
        for _ in range(200):
            with b.recipient_lease("telegram", "42", 10) as opened:
                if opened is not None:
                    return True
            await asyncio.sleep(0.01)
        return False

    opened_first = await outbox.reserve("42")
    assert opened_first is not None
    await asyncio.to_thread(opened_first.open)  # the turn's thread opened it...
    opened_first.release()  # ...and the turn was cancelled before delivering
    assert await free_for_another()

    released_first = await outbox.reserve("42")
    assert released_first is not None
    released_first.release()  # cancelled while its thread still ran the turn
    await asyncio.to_thread(released_first.open)
    assert released_first.take() is None
    assert await free_for_another()
    assert await outbox.reserve("42") is not None  # the chat lock and the slot are free again
