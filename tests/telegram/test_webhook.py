"""PTB's own webhook server, on loopback: the secret token header is the gate."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx

from bot.clock import FixedClock
from bot.telegram import webhook_options
from tests.telegram.offline import ALICE, WAIT, FakeTelegram, Harness, telegram_config

SECRET = "s3cret-Token_for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_webhook_refuses_requests_without_the_secret_and_accepts_it(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
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
    harness = Harness(config, clock, tg)
    await harness.start()
    app = harness.application
    options = webhook_options(config, SECRET)
    await app.updater.start_webhook(**options)
    await app.start()
    try:
        (set_webhook,) = tg.of("setWebhook")
        assert set_webhook["url"] == "https://bot.example.com/tg-hook"
        assert set_webhook["secret_token"] == SECRET
        url = f"http://127.0.0.1:{port}/tg-hook"
        body = json.dumps(harness.updates.command(ALICE, "start"))
        plain = {"Content-Type": "application/json"}
        async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as client:
            missing = await client.post(url, content=body, headers=plain)
            wrong = await client.post(
                url, content=body, headers={**plain, "X-Telegram-Bot-Api-Secret-Token": "guess"}
            )
            assert (missing.status_code, wrong.status_code) == (403, 403)
            await asyncio.wait_for(app.update_queue.join(), WAIT)  # nothing was queued, or done
            assert tg.sent() == []
            assert harness.count("SELECT count(*) FROM processed_updates") == 0
            assert harness.count("SELECT count(*) FROM conversations") == 0

            right = await client.post(
                url, content=body, headers={**plain, "X-Telegram-Bot-Api-Secret-Token": SECRET}
            )
            assert right.status_code == 200

        await tg.until(lambda: bool(tg.sent(ALICE.id)))
        assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
        assert harness.count("SELECT count(*) FROM processed_updates") == 1
    finally:
        await app.updater.stop()
        await app.stop()
        await harness.stop()
