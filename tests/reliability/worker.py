"""A webhook worker for the multi-worker reliability test and the benchmark:
`python -m tests.reliability.worker DATABASE_URL PORT JOURNAL [--clock-minutes N] [--latency S]
[--job-interval S] [--keyboards SOCKET]`.

The App and the python-telegram-bot Application over the fake Bot API transport on the database at
DATABASE_URL, serving the webhook (bot/telegram/_webhook.py: 200 only after the turn committed) on
127.0.0.1:PORT/hook with the secret SECRET, its jobs running every fraction of a second (outbox
sweep, reminders) so that several workers' ticks meet. What "Telegram" accepted goes to JOURNAL as
in tests/reliability/runner.py. It prints {"ready": true} once serving, and runs until SIGTERM
(a clean stop: {"done": true}) or SIGKILL. `--clock-minutes N`: its fixed clock is N minutes after
the tests' NOW (reminders fall due). JOURNAL "-": no journal. `--keyboards SOCKET`: every message
sent with buttons is reported as a datagram [chat, message_id, [[label, data]...]] to the unix
socket SOCKET (the benchmark's client presses them, as a Telegram client would).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from telegram.ext import AIORateLimiter

from bot.clock import FixedClock
from bot.telegram import webhook_options
from bot.telegram._heap import frozen_startup_heap
from bot.telegram._webhook import open_webhook
from bot.testing import Call, FakeTelegram, Harness
from tests.reliability.runner import RATE_LIMIT, Journal, emit
from tests.telegram.support import NOW, telegram_config

SECRET = "workers-secret"
PATH = "hook"
JOB_INTERVAL = 0.3  # seconds: outbox sweep and reminders, so that workers' ticks overlap


class Keyboards:
    """Reports each keyboard the fake Telegram shows to the benchmark's client."""

    def __init__(self, tg: FakeTelegram, path: str) -> None:
        self._tg = tg
        self._path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def __call__(self, call: Call) -> None:
        if call.method != "sendMessage" or not isinstance(call.result, dict):
            return
        chat = call.params["chat_id"]
        shown = self._tg.keyboards.get(chat)
        if shown is not None and shown[0] == call.result["message_id"]:
            data = json.dumps([chat, shown[0], shown[1]], ensure_ascii=False).encode()
            self._socket.sendto(data, self._path)


async def run(
    url: str,
    port: int,
    journal: Path | None,
    minutes: int,
    latency: float,
    job_interval: float = JOB_INTERVAL,
    keyboards: str | None = None,
) -> None:
    tg = FakeTelegram(record=False, latency=latency)
    if journal is not None:
        tg.watch(Journal(journal))
    if keyboards is not None:
        tg.watch(Keyboards(tg, keyboards))
    config = telegram_config(
        Path(tempfile.mkdtemp(prefix="worker-")),
        store={"url": url},
        telegram={
            "incoming_rate_limit": RATE_LIMIT,
            "outbox_interval_seconds": job_interval,
            "reminder_interval_seconds": job_interval,
            "webhook": {
                "listen": "127.0.0.1",
                "port": port,
                "path": PATH,
                "url": f"https://bot.example.com/{PATH}",
            },
        },
    )
    limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
    clock = FixedClock(NOW + timedelta(minutes=minutes))
    harness = await Harness(config, clock, tg, rate_limiter=limiter).start()
    # what serve_webhook does once the application is initialised (the harness did that)
    application = harness.application
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with frozen_startup_heap():  # as `refund-bot run` serves
        server = await open_webhook(application, webhook_options(config, SECRET))
        await application.start()
        emit(ready=True, pid=os.getpid())
        await stop.wait()
        await server.stop()
    await application.stop()
    await harness.stop()
    emit(done=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("port", type=int)
    parser.add_argument("journal")
    parser.add_argument("--clock-minutes", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--job-interval", type=float, default=JOB_INTERVAL)
    parser.add_argument("--keyboards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    journal = None if args.journal == "-" else Path(args.journal)
    asyncio.run(
        run(
            args.url,
            args.port,
            journal,
            args.clock_minutes,
            args.latency,
            args.job_interval,
            args.keyboards,
        )
    )


if __name__ == "__main__":
    main()
