"""A 429 for one chat pauses that chat only; one without a chat pauses the bot (PTB's way)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.telegram._ratelimit import PerChatRateLimiter
from bot.testing import Failure, User
from tests.telegram.support import ALICE, BOB, ShopHarness

PAUSE = 0.3


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # PTB 22 warns about int seconds otherwise


async def test_a_429_for_one_chat_does_not_hold_up_another() -> None:
    limiter = PerChatRateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=2)
    await limiter.initialize()
    started = time.monotonic()
    done: dict[str, float] = {}
    refused: list[str] = []

    async def send(chat: str) -> bool:
        if chat == "A" and not refused:
            refused.append(chat)
            raise RetryAfter(timedelta(seconds=PAUSE))
        done[chat] = time.monotonic() - started
        return True

    async def request(chat: str, delay: float) -> Any:
        await asyncio.sleep(delay)
        data = {"chat_id": chat}
        return await limiter.process_request(send, (chat,), {}, "sendMessage", data, None)

    results = await asyncio.gather(request("A", 0), request("B", 0.05), request("A", 0.05))
    assert results == [True, True, True]
    assert done["B"] < PAUSE / 2  # B went at once, while A waited
    assert done["A"] >= PAUSE  # both of A's messages waited out the pause
    await limiter.shutdown()


async def test_a_429_without_a_chat_pauses_everything_as_ptb_does() -> None:
    limiter = PerChatRateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=2)
    await limiter.initialize()
    calls: list[str] = []

    async def call(name: str) -> bool:
        calls.append(name)
        if calls.count(name) == 1 and name == "getUpdates":
            raise RetryAfter(timedelta(seconds=0.1))
        return True

    assert await limiter.process_request(call, ("getUpdates",), {}, "getUpdates", {}, None)
    assert calls == ["getUpdates", "getUpdates"]
    await limiter.shutdown()


async def test_through_the_bot_a_flood_wait_for_one_chat_leaves_the_other_served(
    harness: ShopHarness,
) -> None:
    tg, up = harness.tg, harness.updates
    tg.fail("sendMessage", Failure.flood(PAUSE), chat_id=ALICE.id)
    answered: dict[int, float] = {}
    started = time.monotonic()

    async def start(user: User) -> None:
        await harness.process(up.command(user, "start"))
        answered[user.id] = time.monotonic() - started

    await asyncio.gather(start(ALICE), start(BOB))
    assert tg.texts(BOB.id) and tg.texts(ALICE.id)  # both answered in the end
    assert answered[BOB.id] < PAUSE / 2 < PAUSE <= answered[ALICE.id]
