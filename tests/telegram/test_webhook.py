"""The webhook server (bot/telegram/_webhook.py), on loopback: the secret token header is the gate,
Telegram hears 200 only once the turn has committed and its replies went out, and Telegram posting
the same update again (it does, when an answer is slow or lost) changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import FixedClock
from bot.telegram import webhook_options
from bot.telegram._webhook import WebhookServer, open_webhook
from bot.testing import WAIT, FakeTelegram
from tests.telegram.support import ALICE, BOB, ShopHarness, free_port, telegram_config

SECRET = "s3cret-Token_for-tests"
JSON = {"Content-Type": "application/json"}
SIGNED = {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET}


class Webhook:
    """A bot running PTB's webhook server on loopback, and a client posting to it."""

    def __init__(
        self, harness: ShopHarness, url: str, client: httpx.AsyncClient, server: WebhookServer
    ) -> None:
        self.harness = harness
        self.url = url
        self.client = client
        self.server = server

    async def post(self, update: dict[str, Any], headers: dict[str, str] = SIGNED) -> int:
        response = await self.client.post(self.url, content=json.dumps(update), headers=headers)
        return response.status_code

    def count(self, table: str) -> int:
        return self.harness.count(f"SELECT count(*) FROM {table}")


@asynccontextmanager
async def webhook(tmp_path: Path, clock: FixedClock, tg: FakeTelegram) -> AsyncIterator[Webhook]:
    port = free_port()
    config = telegram_config(
        tmp_path,
        telegram={
            "mode": "webhook",
            "webhook": {
                "listen": "127.0.0.1",
                "port": port,
                "path": "tg-hook",
                "url": "https://bot.example.com/tg-hook",
            },
        },
    )
    harness = ShopHarness(config, clock, tg)
    await harness.start()
    app = harness.application
    server = await open_webhook(app, webhook_options(config, SECRET))
    await app.start()
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as client:
            yield Webhook(harness, f"http://127.0.0.1:{port}/tg-hook", client, server)
    finally:
        await server.stop()
        await app.stop()
        await harness.stop()


async def test_webhook_refuses_requests_without_the_secret_and_accepts_it(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    async with webhook(tmp_path, clock, tg) as hook:
        (set_webhook,) = tg.of("setWebhook")
        assert set_webhook["url"] == "https://bot.example.com/tg-hook"
        assert set_webhook["secret_token"] == SECRET
        up = hook.harness.updates
        start = up.command(ALICE, "start")
        press = up.press(ALICE, "000000.0")
        wrong = {**JSON, "X-Telegram-Bot-Api-Secret-Token": "guess"}
        empty = {**JSON, "X-Telegram-Bot-Api-Secret-Token": ""}
        assert [
            await hook.post(update, headers)
            for update in (start, press)
            for headers in (JSON, wrong, empty)
        ] == [403] * 6
        await asyncio.wait_for(hook.harness.application.update_queue.join(), WAIT)
        assert tg.sent() == [] and tg.of("answerCallbackQuery") == []
        for table in ("processed_updates", "conversations", "outbox"):
            assert hook.count(table) == 0, f"{table} written by a refused request"

        assert await hook.post(start) == 200
        await tg.until(lambda: bool(tg.sent(ALICE.id)))
        assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
        assert hook.count("processed_updates") == 1


async def test_the_same_update_posted_twice_has_effect_once(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    async with webhook(tmp_path, clock, tg) as hook:
        harness, up = hook.harness, hook.harness.updates
        start, contact = up.command(ALICE, "start"), up.contact(ALICE)
        for update in (start, start, contact, contact):
            assert await hook.post(update) == 200
        # one chat's updates are handled in order: once the reply to the contact is there, both
        # copies of the /start have been handled
        await tg.until(lambda: any(t.startswith("Verified") for t in tg.texts(ALICE.id)))
        press = up.press(ALICE, harness.press_data(ALICE.id, "Request a refund"))
        for update in (press, press, up.command(ALICE, "help")):
            assert await hook.post(update) == 200
        await tg.until(lambda: any(t.startswith("I can help you") for t in tg.texts(ALICE.id)))

        texts = tg.texts(ALICE.id)
        assert [t.split(" ")[0] for t in texts] == [
            "Hi!",  # /start, once
            "Verified.",  # the contact, once
            "张三,",
            "Please",  # the press, once: "Please choose the order…"
            "I",  # /help: "I can help you…", then the prompt again
            "Please",
        ]
        assert len(tg.of("answerCallbackQuery")) == 2  # each copy of the press is answered
        assert len(tg.of("editMessageReplyMarkup")) == 1  # its buttons are taken off once
        assert hook.count("processed_updates") == 4  # /start, contact, press, /help
        assert harness.conversation(ALICE).version == 4  # one turn each, none twice
        assert hook.count("outbox") == len(texts)


async def test_an_update_ptb_cannot_parse_is_400_and_one_log_line_per_update(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async with webhook(tmp_path, clock, tg) as hook:
        broken = hook.harness.updates.unparsable(ALICE)
        with caplog.at_level(logging.DEBUG, logger="telegram.ext.Updater"):
            assert [await hook.post(broken) for _ in range(3)] == [400, 400, 400]  # retried
        lines = [r for r in caplog.records if "cannot be parsed" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert f"update {broken['update_id']} (message)" in lines[0].getMessage()
        assert not any(r.levelno >= logging.CRITICAL for r in caplog.records)
        assert await hook.post(hook.harness.updates.command(ALICE, "start")) == 200
        await tg.until(lambda: bool(tg.sent(ALICE.id)))  # the bot goes on


async def test_telegram_hears_200_only_after_the_turn_committed_and_replied(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    async with webhook(tmp_path, clock, tg) as hook:
        up = hook.harness.updates
        # no waiting: when the answer is there, so are the turn's writes and its reply
        assert await hook.post(up.command(ALICE, "start")) == 200
        assert hook.count("processed_updates") == 1
        assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
        assert await hook.post(up.contact(ALICE)) == 200
        assert hook.harness.conversation(ALICE).version == 2
        assert any(t.startswith("Verified") for t in tg.texts(ALICE.id))


async def test_a_stopping_server_answers_the_update_in_hand_and_turns_new_ones_away(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    """SIGTERM while a turn's reply is in the network: the worker waits for it and answers 200
    (else Telegram's redelivery would find the turn done and the reply only in the outbox); a
    delivery on a kept-alive connection meanwhile is 503, which Telegram retries."""
    async with webhook(tmp_path, clock, tg) as hook:
        up = hook.harness.updates
        assert await hook.post(up.command(BOB, "start"), JSON) == 403  # the connection stays open
        gate = tg.hold("sendMessage")
        async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as other:
            in_hand = asyncio.create_task(
                other.post(hook.url, content=json.dumps(up.command(ALICE, "start")), headers=SIGNED)
            )
            await tg.until(lambda: bool(tg.sent(ALICE.id)))
            stopping = asyncio.create_task(hook.server.stop())
            await asyncio.sleep(0.2)
            assert not stopping.done()
            assert await hook.post(up.command(BOB, "start")) == 503
            gate.release()
            assert (await in_hand).status_code == 200
            await asyncio.wait_for(stopping, WAIT)
        (reply,) = [c for c in tg.calls if c.method == "sendMessage"]
        assert reply.result is not None and reply.params["chat_id"] == ALICE.id
        assert hook.count("outbox WHERE sent_at IS NULL") == 0
        assert tg.sent(BOB.id) == []


async def test_a_stopping_server_waits_for_the_update_in_hand_only_so_long(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async with webhook(tmp_path, clock, tg) as hook:
        gate = tg.hold("sendMessage")
        in_hand = asyncio.create_task(hook.post(hook.harness.updates.command(ALICE, "start")))
        await tg.until(lambda: bool(tg.sent(ALICE.id)))
        with caplog.at_level(logging.WARNING, logger="bot.telegram._webhook"):
            await asyncio.wait_for(hook.server.stop(grace=0.2), WAIT)
        assert "1 update(s) still being handled after 0.2 s" in caplog.text
        with pytest.raises(httpx.RemoteProtocolError):  # no answer: Telegram sends it again
            await in_hand
        gate.release()
