"""Through the running Application's update queue: one chat in order, other chats meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from telegram import Update

from bot.engine import Reply
from bot.store import OpenedRecipient, OutboxMessage, StoreBusy
from bot.telegram import ChatLocks, PerChatUpdateProcessor
from bot.telegram._parse import conversation_key
from bot.testing import WAIT
from tests.telegram.support import ALICE, BOB, ShopHarness


async def test_one_chat_in_order_while_other_chats_go_ahead(harness: ShopHarness) -> None:
    app, tg, up = harness.application, harness.tg, harness.updates
    assert isinstance(app.update_processor, PerChatUpdateProcessor)
    gate = tg.hold("sendMessage", chat_id=ALICE.id)  # Alice's messages hang in the network
    await app.start()
    try:
        for data in (up.command(ALICE, "start"), up.contact(ALICE), up.command(BOB, "start")):
            await app.update_queue.put(Update.de_json(data, app.bot))
        # Bob is answered while Alice's first turn is still sending (the fake records the
        # welcome, then waits; which of the two gets that far first is the scheduler's choice)...
        await tg.until(lambda: len(tg.texts(BOB.id)) == 1 and len(tg.texts(ALICE.id)) == 1)
        # ...and Alice's contact waits for her /start to finish: not even handled yet
        await asyncio.sleep(0.05)
        assert harness.state(ALICE) == "start.welcome"
        assert len(tg.texts(ALICE.id)) == 1
        gate.release()
        await tg.until(lambda: len(tg.texts(ALICE.id)) == 3)
        texts = tg.texts(ALICE.id)
        assert texts[0].startswith("Hi! This is the 小年卡盟")
        assert texts[1:] == ["Verified. Hi, 张三!", "张三, what can I help you with?"]
        await asyncio.wait_for(app.update_queue.join(), WAIT)
    finally:
        gate.release()
        await app.stop()
    assert len(app.update_processor.locks) == 0  # no lock left behind


async def test_chat_locks_are_fifo_and_per_chat() -> None:
    locks = ChatLocks()
    order: list[str] = []
    entered = {name: asyncio.Event() for name in ("a1", "b1")}
    release = asyncio.Event()

    async def hold(chat: int, name: str) -> None:
        async with locks.hold(chat):
            order.append(name)
            if name in entered:
                entered[name].set()
            if name == "a1":
                await release.wait()

    tasks = [
        asyncio.create_task(hold(c, n)) for c, n in ((1, "a1"), (1, "a2"), (2, "b1"), (1, "a3"))
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in entered.values())), WAIT)
    assert order == ["a1", "b1"]  # chat 2 is not held up by chat 1
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert order == ["a1", "b1", "a2", "a3"]  # chat 1 in the order asked
    assert len(locks) == 0


async def test_try_take_takes_only_a_free_chat_and_give_back_lets_waiters_in() -> None:
    locks = ChatLocks()
    assert await locks.try_take(1) is True
    assert await locks.try_take(1) is False  # held
    assert await locks.try_take(2) is True  # another chat
    entered = asyncio.Event()

    async def wait_for_chat_1() -> None:
        async with locks.hold(1):
            entered.set()

    waiter = asyncio.create_task(wait_for_chat_1())
    await asyncio.sleep(0.01)
    assert not entered.is_set()
    locks.give_back(1)
    await asyncio.wait_for(waiter, WAIT)
    locks.give_back(2)
    assert len(locks) == 0
    assert await locks.try_take(1) is True  # free again
    locks.give_back(1)


async def test_a_turn_whose_chat_is_being_delivered_replies_once_that_delivery_ends(
    harness: ShopHarness,
) -> None:
    """The turn reserves its chat's delivery only when nothing else delivers there: while a job
    holds the chat, the turn still runs and its reply follows that delivery."""
    assert harness.bot is not None
    outbox, tg = harness.bot.adapter.outbox, harness.tg
    async with outbox._locks.hold(ALICE.id):  # e.g. the sweep, sending to Alice right now
        turn = asyncio.create_task(harness.process(harness.updates.command(ALICE, "start")))
        engine = harness.engine_app.engine
        for _ in range(500):  # the turn commits while the delivery is in hand
            if engine.conversation(conversation_key(ALICE.id)) is not None:
                break
            await asyncio.sleep(0.01)
        assert harness.state(ALICE) == "start.welcome"  # the turn committed
        await asyncio.sleep(0.05)
        assert tg.texts(ALICE.id) == []  # the reply waits for the delivery in hand
    await asyncio.wait_for(turn, WAIT)
    assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
    assert len(outbox._locks) == 0 and not outbox._leases.locked()


async def test_a_failed_read_after_the_turn_still_delivers_its_reply(
    harness: ShopHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The turn's own thread opens the chat's delivery after the commit; when that fails, the
    turn stands and the reply goes out the usual way."""
    store = harness.engine_app.store
    real = store.recipient_lease
    opened: list[str] = []

    @contextmanager
    def failing_once(channel: str, recipient: str, limit: int) -> Iterator[OpenedRecipient | None]:
        opened.append(recipient)
        if len(opened) == 1:
            raise StoreBusy("the database is locked")
        with real(channel, recipient, limit) as found:
            yield found

    monkeypatch.setattr(store, "recipient_lease", failing_once)
    await harness.process(harness.updates.command(ALICE, "start"))
    assert opened == [str(ALICE.id)] * 2
    assert "reading the queue after the turn failed" in caplog.text
    assert harness.state(ALICE) == "start.welcome"
    assert harness.tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")


async def test_the_outbox_sweep_passes_over_a_chat_in_hand_instead_of_waiting(
    harness: ShopHarness,
) -> None:
    """A chat whose delivery a turn (or another delivery) holds is that holder's to send: the
    sweep goes on with the other chats and leaves it for its next round."""
    assert harness.bot is not None
    outbox, tg, bot = harness.bot.adapter.outbox, harness.tg, harness.application.bot
    with harness.engine_app.store.unit_of_work() as uow:
        for user in (ALICE, BOB):
            payload = Reply("k", f"queued for {user.id}").to_payload()
            uow.enqueue(OutboxMessage("telegram", str(user.id), payload))
    async with outbox._locks.hold(ALICE.id):
        assert await asyncio.wait_for(outbox.deliver(bot), WAIT) == 1
        assert tg.texts(BOB.id) == [f"queued for {BOB.id}"]
        assert tg.texts(ALICE.id) == []
    assert await asyncio.wait_for(outbox.deliver(bot), WAIT) == 1
    assert tg.texts(ALICE.id) == [f"queued for {ALICE.id}"]
