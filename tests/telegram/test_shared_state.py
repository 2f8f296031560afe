"""What the adapter used to keep per worker lives in the database: the parts of an album waiting to
be handed over, and whether a chat may still show the contact reply keyboard. Several workers on
one database (two harnesses in-process, as in test_workers.py) behave as one; a worker that stops
without handing its album over loses nothing. Over SQLite (one process at a time: a restart) and
PostgreSQL (workers at once)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FixedClock
from bot.config import Config
from bot.testing import FakeTelegram
from tests.store.postgres import Databases
from tests.telegram.support import ALICE, PHONE, ShopHarness, telegram_config

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases()
    yield databases
    databases.close()


@pytest.fixture(params=BACKENDS)
def shared_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Config]:
    """The config of every worker of one test: one SQLite file or one PostgreSQL database."""
    if request.param == "sqlite":
        yield telegram_config(tmp_path)
        return
    databases: Databases = request.getfixturevalue("pg")
    url = databases.create()
    yield telegram_config(tmp_path, store={"url": url})
    databases.drop(url)


class Workers:
    """Workers on one database and one fake Telegram, fed by one update builder (update ids
    are Telegram's, whichever worker an update reaches)."""

    def __init__(self, config: Config, clock: FixedClock, tg: FakeTelegram) -> None:
        self.config, self.clock, self.tg = config, clock, tg
        self.started: list[ShopHarness] = []

    async def start(self) -> ShopHarness:
        worker = await ShopHarness(self.config, self.clock, self.tg).start()
        if self.started:
            worker.updates = self.started[0].updates
        self.started.append(worker)
        return worker

    async def at_evidence(self) -> tuple[ShopHarness, ShopHarness]:
        """Two workers, Alice at the evidence step of an application."""
        a, b = await self.start(), await self.start()
        await a.to_evidence(ALICE)
        return a, b

    async def stop(self) -> None:
        for worker in self.started:
            await worker.stop()


@pytest.fixture
async def workers(
    shared_config: Config, clock: FixedClock, tg: FakeTelegram
) -> AsyncIterator[Workers]:
    running = Workers(shared_config, clock, tg)
    try:
        yield running
    finally:
        await running.stop()


def received(tg: FakeTelegram) -> list[str]:
    return [t for t in tg.texts(ALICE.id) if t.startswith("Received")]


def waiting_parts(worker: ShopHarness) -> int:
    with worker.engine_app.store.unit_of_work() as uow:
        return len(uow.album_parts("telegram", str(ALICE.id)))


def files(worker: ShopHarness) -> list[str]:
    return [item["file_id"] for item in worker.evidence(ALICE)]


async def killed(worker: ShopHarness) -> None:
    """The worker dies: no post_stop, no album handed over, its timers gone with it."""
    assert worker.bot is not None and worker.app is not None
    for waiting in worker.bot.adapter._waiting.values():
        waiting.timer.cancel()
    await worker.application.shutdown()
    worker.app.close()
    worker.bot, worker.app = None, None


# -- albums -----------------------------------------------------------------------------------


async def test_parts_reaching_two_workers_are_one_turn_with_every_file(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    up = a.updates
    await a.process(up.photo(ALICE, "w1", album="alb-w"))
    await b.process(up.photo(ALICE, "w2", album="alb-w"))
    await a.process(up.photo(ALICE, "w3", album="alb-w"))
    assert received(tg) == []  # stored, still being collected
    assert waiting_parts(b) == 3
    await b.flush_albums()  # b hands over the album, a's parts with its own
    await a.flush_albums()
    assert received(tg) == ["Received 3, 3 in total."]
    assert files(a) == ["w1", "w2", "w3"]
    assert waiting_parts(a) == 0


async def test_the_worker_of_the_latest_part_hands_the_album_over_after_the_wait(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    # long enough that the three parts are stored before the first timer fires, on a slow
    # machine too (each part is a store transaction in a thread)
    wait = 1.0
    for worker in (a, b):
        assert worker.bot is not None
        worker.bot.adapter.album_wait = wait
    up = a.updates
    await a.process(up.photo(ALICE, "t1", album="alb-t"))
    await b.process(up.photo(ALICE, "t2", album="alb-t"))
    await a.process(up.photo(ALICE, "t3", album="alb-t"))
    await tg.until(lambda: bool(received(tg)))
    await asyncio.sleep(wait)  # b's timer has fired as well: its part was not the latest
    assert received(tg) == ["Received 3, 3 in total."]
    assert files(b) == ["t1", "t2", "t3"]
    assert waiting_parts(b) == 0


# at once: PostgreSQL (two processes on one SQLite file would both deliver the reply, each the
# holder of its own one-process outbox lease; SQLite runs one worker)
@pytest.mark.parametrize("shared_config", ["postgresql"], indirect=True)
async def test_two_workers_handing_one_album_over_at_once_make_one_turn(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    up = a.updates
    await a.process(up.photo(ALICE, "c1", album="alb-c"))
    await b.process(up.photo(ALICE, "c2", album="alb-c"))
    await asyncio.gather(a.flush_albums(), b.flush_albums())
    assert files(a) == ["c1", "c2"]
    assert received(tg) == ["Received 2, 2 in total."]
    assert a.errors == [] and b.errors == []


async def test_an_album_read_before_another_worker_handed_part_of_it_over_is_read_again(
    workers: Workers, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b reads the parts (one came late to b, with the lowest update id), a hands the other two
    over before b's turn: b's turn finds its read stale, rolls back and hands over what is left,
    so no file is taken twice."""
    a, b = await workers.at_evidence()
    up = a.updates
    late, second, third = (up.photo(ALICE, f"s{i}", album="alb-s") for i in range(3))
    await a.process(second)
    await a.process(third)
    await b.process(late)
    assert b.bot is not None and a.bot is not None
    adapter_b, adapter_a = b.bot.adapter, a.bot.adapter
    stale = adapter_b._album_parts(ALICE.id)
    assert [p.update_id for p in stale] == [
        late["update_id"],
        second["update_id"],
        third["update_id"],
    ]
    await adapter_a._album_turn_safely(a.application.bot, stale[1:])  # a hands over its two
    assert received(tg) == ["Received 2, 2 in total."]
    a.engine_app.store.flush()  # a's delivery records (SQLite holds them for its next write)
    reads = iter([stale])
    fresh = adapter_b._album_parts
    monkeypatch.setattr(adapter_b, "_album_parts", lambda chat: next(reads, None) or fresh(chat))
    await adapter_b._hand_over(b.application.bot, ALICE.id)
    assert received(tg) == ["Received 2, 2 in total.", "Received 1, 3 in total."]
    assert files(b) == ["s1", "s2", "s0"]
    # the stale read was not taken for a second upload of the same photos
    assert not [t for t in tg.texts(ALICE.id) if "already been uploaded" in t]
    assert waiting_parts(b) == 0
    assert a.errors == [] and b.errors == []


@pytest.mark.parametrize("shared_config", ["postgresql"], indirect=True)
async def test_a_part_redelivered_while_its_album_is_handed_over_is_not_stored_again(
    workers: Workers,
) -> None:
    """Telegram sends a part again to b while a's album turn (which drops it) has not committed:
    b stores it only after a's turn, and then sees it handled (else it would wait for ever)."""
    a, b = await workers.at_evidence()
    up = a.updates
    first, second = (up.photo(ALICE, f"h{i}", album="alb-h") for i in range(2))
    await a.process(first)
    await a.process(second)
    assert b.bot is not None
    stored = b.bot.adapter._album_parts(ALICE.id)
    dropped, results = threading.Event(), []

    def hand_over() -> None:  # a's album turn, held open a moment after dropping the parts
        with a.engine_app.store.unit_of_work() as uow:
            uow.lock_chat("telegram", str(ALICE.id))
            uow.mark_processed(stored[0].dedupe_key, a.clock.now())
            uow.drop_album_parts("telegram", [p.update_id for p in stored], a.clock.now())
            dropped.set()
            time.sleep(0.5)

    def redeliver() -> None:
        dropped.wait(10)
        assert b.bot is not None
        results.append(b.bot.adapter._store_part(stored[1]))

    threads = [threading.Thread(target=hand_over), threading.Thread(target=redeliver)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == [(False, None)]  # handled already; nothing else waits
    assert waiting_parts(b) == 0


async def test_a_part_redelivered_after_its_album_was_handled_changes_nothing(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    up = a.updates
    parts = [up.photo(ALICE, f"r{i}", album="alb-r") for i in range(2)]
    await a.process(parts[0])
    await b.process(parts[1])
    await a.flush_albums()
    assert received(tg) == ["Received 2, 2 in total."]
    sent = len(tg.sent())
    for worker, part in ((b, parts[0]), (a, parts[1])):  # Telegram sends each part again
        await worker.process(part)
    assert waiting_parts(a) == 0  # not stored again
    await a.flush_albums()
    await b.flush_albums()
    assert len(tg.sent()) == sent
    assert files(a) == ["r0", "r1"]


async def test_a_part_left_by_a_worker_that_died_is_handed_over_by_the_sweep(
    workers: Workers, clock: FixedClock, tg: FakeTelegram
) -> None:
    a = await workers.start()
    await a.to_evidence(ALICE)
    await a.process(a.updates.photo(ALICE, "d1", album="alb-d"))
    await a.process(a.updates.photo(ALICE, "d2", album="alb-d"))
    await killed(a)  # acknowledged to Telegram: it will not send the parts again
    b = await workers.start()
    await b.run_jobs("albums")
    assert received(tg) == []  # the album may still be being collected: not yet
    clock.advance(timedelta(seconds=b.config.telegram.album_wait_seconds + 1))
    await b.run_jobs("albums")
    assert received(tg) == []  # within the grace
    clock.advance(timedelta(seconds=2))
    await b.run_jobs("albums")
    assert received(tg) == ["Received 2, 2 in total."]
    assert files(b) == ["d1", "d2"]
    await b.run_jobs("albums")
    assert len(received(tg)) == 1


async def test_a_text_after_an_album_on_another_worker_waits_for_the_album(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    tg.clear()
    up = a.updates
    await a.process(up.photo(ALICE, "o1", album="alb-o"))
    await a.process(up.photo(ALICE, "o2", album="alb-o"))
    await b.process(up.command(ALICE, "help"))
    texts = tg.texts(ALICE.id)
    assert texts[0] == "Received 2, 2 in total."
    assert any(t.startswith("I can help you") for t in texts[1:])
    await a.flush_albums()  # a's own timer finds nothing left to hand over
    await a.stop()  # nor does its post_stop
    assert tg.texts(ALICE.id) == texts
    assert a.errors == [] and b.errors == []


async def test_an_album_after_another_album_goes_after_it(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.at_evidence()
    up = a.updates
    await a.process(up.photo(ALICE, "x1", album="alb-x"))
    await b.process(up.photo(ALICE, "y1", album="alb-y"))  # another album: the first goes first
    assert received(tg) == ["Received 1, 1 in total."]
    assert files(b) == ["x1"]
    await b.flush_albums()
    assert received(tg) == ["Received 1, 1 in total.", "Received 1, 2 in total."]
    assert files(b) == ["x1", "y1"]


# -- the contact reply keyboard ---------------------------------------------------------------


def markup(params: dict[str, Any]) -> Any:
    return params.get("reply_markup")


async def test_the_keyboard_shown_by_one_worker_is_taken_away_by_another(
    workers: Workers, tg: FakeTelegram
) -> None:
    a, b = await workers.start(), await workers.start()
    await a.process(a.updates.command(ALICE, "start"))
    assert markup(tg.sent(ALICE.id)[-1])["keyboard"][0][0]["request_contact"] is True
    await b.process(a.updates.contact(ALICE, PHONE))
    linked = tg.sent(ALICE.id)[-2]
    assert linked["text"] == "Verified. Hi, 张三!"
    assert markup(linked) == {"remove_keyboard": True}
    # taken away once: the next plain reply carries no removal
    await a.process(a.updates.command(ALICE, "help"))
    assert markup(tg.sent(ALICE.id)[-1]) != {"remove_keyboard": True}


async def test_the_keyboard_flag_survives_a_restart(
    shared_config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    harness = await ShopHarness(shared_config, clock, tg).start()
    try:
        await harness.process(harness.updates.command(ALICE, "start"))
        await harness.restart()
        await harness.process(harness.updates.contact(ALICE, PHONE))
        linked = tg.sent(ALICE.id)[-2]
        assert linked["text"] == "Verified. Hi, 张三!"
        assert markup(linked) == {"remove_keyboard": True}
    finally:
        await harness.stop()


async def test_a_contact_without_the_keyboard_showing_removes_nothing(
    shared_config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    """The keyboard was taken away already; the customer shares a number again from the
    attachment menu: nothing to take away (a contact no longer marks the chat by itself, the
    flag comes from sending the keyboard)."""
    harness = await ShopHarness(shared_config, clock, tg).start()
    try:
        await harness.link(ALICE)
        sent = len(tg.sent(ALICE.id))
        await harness.process(harness.updates.contact(ALICE, PHONE))
        later = tg.sent(ALICE.id)[sent:]
        assert later and all(markup(p) != {"remove_keyboard": True} for p in later)
    finally:
        await harness.stop()
