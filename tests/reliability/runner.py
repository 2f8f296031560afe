"""A bot process for the reliability tests: `python -m tests.reliability.runner DB SCRIPT [--gate]
[--journal JOURNAL]`.

It builds the App and the python-telegram-bot Application over the fake Bot API transport on the
SQLite file DB (as `refund-bot run` would, minus the network), then feeds it the raw update JSON of
SCRIPT (one update per line) through `Application.process_update`, one after the other. On stdout,
one JSON object per line, flushed at once:

    {"up": true}          imports done, about to open the store and start
    {"ready": true}       started: whatever the outbox held has been delivered
    {"ack": UPDATE_ID}    process_update has returned for that update
    {"done": true}        the script is done and the bot has shut down

What "Telegram" accepted is Telegram's record, not the bot's: every sendMessage the fake Bot API
accepts is appended to the journal file JOURNAL (default: telegram.jsonl beside DB) before the bot
gets the answer, one JSON line {"chat": CHAT, "text": "…", "pid": PID}, so a kill cannot hide a
message that went out, and several processes can share one journal.

A press whose callback_data is "@label:TEXT" is the customer tapping the button whose label
contains TEXT in the conversation's latest prompt: the token is looked up in the stored menu when
the update is fed (a restarted process knows no earlier message), like a client showing the last
keyboard. With --gate the process waits for a line on stdin after "ready" (two processes start
their scripts together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from telegram.ext import AIORateLimiter

from bot.clock import FixedClock
from bot.config import Config
from bot.store import Lease, OpenedRecipient, Store, UnitOfWork
from bot.telegram import conversation_key
from bot.testing import Call, FakeTelegram, Harness
from tests.telegram.support import NOW, telegram_config

LABEL = "@label:"
RATE_LIMIT = 1000  # the scripts are fast customers; the flood limit is not what is tested here
LATENCY = 0.002  # seconds a Bot API call takes (Telegram's are 50-300 ms: this is a fast network)
COMMIT_PAUSE = 0.001  # seconds a unit of work lingers before it commits


def emit(**fields: Any) -> None:
    print(json.dumps(fields, ensure_ascii=False), flush=True)


class Journal:
    """Telegram's record: every message the fake Bot API accepts, written before the bot gets
    the answer (one write(2) per line on an O_APPEND file: lines of several processes do not
    mix)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, call: Call) -> None:
        if call.method == "sendMessage":
            params = call.params
            line = {"chat": params["chat_id"], "text": params.get("text", ""), "pid": os.getpid()}
            os.write(self._fd, (json.dumps(line, ensure_ascii=False) + "\n").encode())


class SlowCommits:
    """The store, each unit of work lingering before its commit like on a slow disk, so that a
    kill lands inside a transaction more often (it must then roll back as a whole)."""

    def __init__(self, store: Store, pause: float) -> None:
        self._store = store
        self._pause = pause

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._store.unit_of_work() as uow:
            yield uow
            time.sleep(self._pause)

    def mark_sent_soon(self, outbox_ids: Sequence[int], at: datetime) -> None:
        self._store.mark_sent_soon(outbox_ids, at)

    def lease(self, name: str) -> AbstractContextManager[Lease | None]:
        return self._store.lease(name)

    def recipient_lease(
        self, channel: str, recipient: str, limit: int
    ) -> AbstractContextManager[OpenedRecipient | None]:
        return self._store.recipient_lease(channel, recipient, limit)

    def flush(self) -> None:
        self._store.flush()

    def close(self) -> None:
        self._store.close()


def runner_config(db: Path) -> Config:
    return telegram_config(
        db.parent, store={"path": str(db)}, telegram={"incoming_rate_limit": RATE_LIMIT}
    )


def resolve_press(harness: Harness, data: dict[str, Any]) -> dict[str, Any]:
    """A "@label:TEXT" press gets the token of that button in the stored menu (if any)."""
    query = data.get("callback_query")
    if query is None or not str(query.get("data", "")).startswith(LABEL):
        return data
    wanted = query["data"][len(LABEL) :]
    conv = harness.engine_app.engine.conversation(conversation_key(query["message"]["chat"]["id"]))
    menu = (conv.data.get("menu") if conv is not None else None) or {}
    for index, item in enumerate(menu.get("items", [])):
        if wanted in item[2]:
            return {**data, "callback_query": {**query, "data": f"{menu['nonce']}.{index}"}}
    # no such button now: the press is a stale one, which the bot must shrug off
    return {**data, "callback_query": {**query, "data": "000000.0"}}


async def run(db: Path, script: Path, journal: Path, gate: bool) -> None:
    # a call is in flight for a moment each way, as over a network: a kill can land in between
    tg = FakeTelegram(record=False, latency=LATENCY)
    tg.watch(Journal(journal))
    # Telegram's 30 messages/s for a bot is not what is tested: throttling off, 429 retries on
    limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
    harness = Harness(runner_config(db), FixedClock(NOW), tg, rate_limiter=limiter)
    emit(up=True)
    await harness.start(wrap_store=lambda store: SlowCommits(store, COMMIT_PAUSE))
    emit(ready=True)
    if gate:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    with script.open(encoding="utf-8") as lines:
        for line in lines:
            data = resolve_press(harness, json.loads(line))
            await harness.process(data)
            emit(ack=data["update_id"])
    await harness.stop()
    emit(done=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("script", type=Path)
    parser.add_argument("--gate", action="store_true")
    parser.add_argument("--journal", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    journal = args.journal or args.db.parent / "telegram.jsonl"
    asyncio.run(run(args.db, args.script, journal, args.gate))


if __name__ == "__main__":
    main()
