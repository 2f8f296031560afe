"""Several workers on one database, and one slow writer: the store's work runs off the event loop,
a busy database is waited out with backoff (the apology only when it stays busy), and on
PostgreSQL the outbox of a chat, each job tick and polling have one holder at a time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.config import Config, Secrets
from bot.store import open_store
from bot.telegram import run
from bot.testing import FakeTelegram
from tests.store.postgres import Databases
from tests.telegram.support import ALICE, BOB, ShopHarness, telegram_config

APOLOGY = "Sorry, something went wrong on our side"


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases()
    yield databases
    databases.close()


def hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another connection takes the file's write lock and keeps it `seconds` (returns once held)."""
    taken = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        db.execute("ROLLBACK")
        db.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    return thread


async def longest_stall(until: asyncio.Future[object]) -> float:
    """The longest the event loop went without running this task (5 ms ticks; a turn waiting
    on the event loop for the busy timeout would stall it 100 ms at a time)."""
    worst, last = 0.0, time.monotonic()
    while not until.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


def busy_config(tmp_path: Path) -> Config:
    return telegram_config(tmp_path, store={"busy_timeout_ms": 100})


async def test_one_slow_writer_delays_two_chats_without_freezing_anyone(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    harness = await ShopHarness(busy_config(tmp_path), clock, tg).start()
    try:
        holder = hold_write_lock(str(harness.config.store.path), 1.5)
        started = time.monotonic()
        served = asyncio.ensure_future(
            asyncio.gather(
                harness.process(harness.updates.command(ALICE, "start")),
                harness.process(harness.updates.command(BOB, "start")),
            )
        )
        stall = await longest_stall(served)
        await served
        holder.join()
        # each turn met the lock (100 ms busy timeout), backed off and went through after it
        assert time.monotonic() - started >= 1.4
        for user in (ALICE, BOB):
            texts = tg.texts(user.id)
            assert texts and texts[0].startswith("Hi! This is the 小年卡盟"), texts
            assert not any(APOLOGY in t for t in texts)
        assert harness.count("SELECT count(*) FROM processed_updates") == 2
        assert stall < 0.08, f"the event loop stood still for {stall:.3f} s"
        assert harness.errors == []
    finally:
        await harness.stop()


async def test_a_database_busy_past_every_retry_gets_the_apology_and_nothing_is_written(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    harness = await ShopHarness(busy_config(tmp_path), clock, tg).start()
    try:
        assert harness.bot is not None
        harness.bot.adapter.busy_retry_delays = (0.05, 0.05)
        holder = hold_write_lock(str(harness.config.store.path), 1.5)
        await harness.process(harness.updates.command(ALICE, "start"))
        texts = tg.texts(ALICE.id)
        assert len(texts) == 1 and APOLOGY in texts[0]
        assert harness.errors and "StoreBusy" in harness.errors[0]
        holder.join()
        assert harness.count("SELECT count(*) FROM processed_updates") == 0
        # the customer tries again once the lock is gone: one turn like any other
        await harness.process(harness.updates.command(ALICE, "start"))
        assert tg.texts(ALICE.id)[1].startswith("Hi! This is the 小年卡盟")
    finally:
        await harness.stop()


# -- PostgreSQL: leases -----------------------------------------------------------------------


def test_a_lease_has_one_holder_across_stores_and_is_free_again_after(pg: Databases) -> None:
    url = pg.create()
    first, second = open_store(url), open_store(url)
    try:
        with first.lease("job:reminders") as held:
            assert held is not None
            with second.lease("job:reminders") as other:
                assert other is None
            with second.lease("job:deadlines") as other:
                assert other is not None  # another name: another lease
        with second.lease("job:reminders") as held:
            assert held is not None
    finally:
        first.close()
        second.close()


def test_run_refuses_polling_while_another_worker_polls_the_database(
    pg: Databases, tmp_path: Path
) -> None:
    url = pg.create()
    other = open_store(url)
    err = StringIO()
    try:
        with other.lease("polling") as polling:
            assert polling is not None
            config = telegram_config(tmp_path, store={"url": url})
            assert run(config, Secrets("123456:TEST-token", None), stderr=err) == 2
    finally:
        other.close()
    assert "another worker is already polling" in err.getvalue()
    assert "webhook" in err.getvalue()


async def test_a_job_tick_runs_on_one_worker_at_a_time(
    pg: Databases, tmp_path: Path, clock: FixedClock
) -> None:
    url = pg.create()
    config = telegram_config(tmp_path, store={"url": url})
    workers = [await ShopHarness(config, clock, FakeTelegram(clock.now)).start() for _ in range(2)]
    try:
        running = 0
        ran: list[int] = []
        gate = asyncio.Event()

        async def job(context: object) -> None:
            nonlocal running
            running += 1
            ran.append(running)
            await gate.wait()
            running -= 1

        ticks = []
        for worker in workers:
            assert worker.bot is not None
            tick = worker.bot.adapter.once("test", job)
            ticks.append(asyncio.ensure_future(tick(None)))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        gate.set()
        await asyncio.gather(*ticks)
        assert ran == [1]  # one worker ran the tick, the other skipped it
    finally:
        for worker in workers:
            await worker.stop()
