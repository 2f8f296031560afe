"""Through the running Application's update queue: one chat in order, other chats meanwhile."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.telegram import ChatLocks, PerChatUpdateProcessor
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
