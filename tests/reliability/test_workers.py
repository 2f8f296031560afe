"""Three webhook workers on one PostgreSQL database, killed at random moments.

Each chat's updates go in order (the next one once Telegram heard 200 for the last: Telegram's
per-chat sequencing) to a random live worker, some of them posted twice at once to two workers;
a request that dies with its worker is sent again to another, as Telegram does. Meanwhile workers
are SIGKILLed and restarted. Afterwards: every distinct update was exactly one turn, every
committed outbox row reached the fake Bot API, in outbox order within each chat, a message twice
only when its first copy was sent by a worker that was then killed (the crash window between a
send and its record), the refund and ticket invariants hold; then three workers whose clock says
the reminders are due tick their reminder job together: each due reminder goes out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.orders_import import import_orders
from bot.store._postgres import connect
from bot.store.postgres import PostgresStore
from bot.testing import Updates
from tests.reliability.runner import LABEL
from tests.reliability.support import Customer, chat_of, customers
from tests.reliability.worker import PATH, SECRET
from tests.store.postgres import Databases
from tests.telegram.support import NOW, free_port

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30)))
CHATS = 12
WORKERS = 3
KILLS = 5
TWICE = 0.15  # share of updates posted to two workers at once
DEADLINE = 40.0  # seconds for the whole run: nothing may hang
REMINDER = "Your refund request isn't finished yet"


class Worker:
    """One worker process on a fixed port (a restart takes the same port)."""

    def __init__(self, url: str, journal: Path, logs: Path, n: int, minutes: int = 0) -> None:
        self.url, self.journal, self.n, self.minutes = url, journal, n, minutes
        self.port = free_port()
        self.logs = logs
        self.pids: list[int] = []
        self.process: subprocess.Popen[str] | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        self.ready.clear()
        with (self.logs / f"worker{self.n}-{len(self.pids)}.log").open("w") as log:
            self.process = self._spawn(log)
        self.pids.append(self.process.pid)
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _spawn(self, log: Any) -> subprocess.Popen[str]:
        args = [self.url, str(self.port), str(self.journal), "--clock-minutes", str(self.minutes)]
        return subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.worker", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                if json.loads(line).get("ready"):
                    self.ready.set()

    @property
    def live(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.ready.is_set()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is not None and self.process.stdout:
            self.process.stdout.close()

    def stop(self) -> None:
        """SIGTERM: a clean stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.close()

    def log(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.logs.glob(f"worker{self.n}-*")))


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases()
    yield databases
    databases.close()


def rows(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with connect(url) as db:  # json as text, like the store
        return db.execute(sql, params).fetchall()


def resolve(url: str, data: dict[str, Any]) -> dict[str, Any]:
    """A "@label:TEXT" press gets the token of that button in the chat's stored menu."""
    query = data.get("callback_query")
    if query is None or not str(query.get("data", "")).startswith(LABEL):
        return data
    wanted = query["data"][len(LABEL) :]
    found = rows(
        url,
        "SELECT data FROM conversations WHERE channel = 'telegram' AND user_id = %s",
        str(query["message"]["chat"]["id"]),
    )
    menu = (json.loads(found[0][0]).get("menu") if found else None) or {}
    for index, item in enumerate(menu.get("items", [])):
        if wanted in item[2]:
            return {**data, "callback_query": {**query, "data": f"{menu['nonce']}.{index}"}}
    return {**data, "callback_query": {**query, "data": "000000.0"}}


async def post_until_answered(
    client: httpx.AsyncClient, workers: list[Worker], update: dict[str, Any], rng: random.Random
) -> None:
    """Like Telegram: to some worker, again (to any) until one answers 200."""
    body = json.dumps(update)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    while True:
        live = [w for w in workers if w.live] or workers
        worker = rng.choice(live)
        try:
            response = await client.post(
                f"http://127.0.0.1:{worker.port}/{PATH}", content=body, headers=headers
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)


async def drive(url: str, workers: list[Worker], people: list[Customer], rng: random.Random) -> int:
    """Every customer's script through the workers, while workers are killed; the kills made."""
    up = Updates(lambda: NOW)
    scripts = {c.user.id: c.apply_flow(up) for c in people}
    kills = 0
    done = asyncio.Event()

    async def chat(script: list[dict[str, Any]], client: httpx.AsyncClient) -> None:
        for raw in script:
            update = await asyncio.to_thread(resolve, url, raw)
            if rng.random() < TWICE:
                await asyncio.gather(
                    post_until_answered(client, workers, update, rng),
                    post_until_answered(client, workers, update, rng),
                )
            else:
                await post_until_answered(client, workers, update, rng)

    async def killer() -> None:
        # all KILLS happen on every machine: once the scripts are through (a fast machine), the
        # rest come quickly, and the sweep must still deliver what each killed worker left behind
        nonlocal kills
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.05, 0.2) if done.is_set() else rng.uniform(0.3, 0.9))
            victim = rng.choice(workers)
            victim.kill()
            kills += 1
            victim.start()

    async with httpx.AsyncClient(trust_env=False, timeout=15) as client:
        killing = asyncio.create_task(killer())
        await asyncio.gather(*(chat(s, client) for s in scripts.values()))
        done.set()
        await killing
    return kills


def journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.1)


def delivery_problems(url: str, got: list[dict[str, Any]], killed: set[int]) -> list[str]:
    """Every committed row delivered, in outbox order per chat; a repeat only from a killed pid."""
    found = []
    outbox = rows(url, "SELECT outbox_id, recipient, payload FROM outbox ORDER BY outbox_id")
    by_chat: dict[str, list[dict[str, Any]]] = {}
    for m in got:
        by_chat.setdefault(str(m["chat"]), []).append(m)
    wanted: dict[str, list[str]] = {}
    for _, chat, payload in outbox:
        wanted.setdefault(chat, []).append(json.loads(payload)["text"])
    for chat, texts in wanted.items():
        stream = by_chat.get(chat, [])
        i = 0
        for text in texts:
            # the next copy of this text; anything skipped on the way must be a repeat of an
            # earlier message whose first copy a killed worker sent
            while i < len(stream) and stream[i]["text"] != text:
                i += 1
            if i == len(stream):
                found.append(f"chat {chat}: {text[:40]!r} missing or out of order")
                break
            i += 1
        copies = Counter(m["text"] for m in stream)
        for text, count in copies.items():
            extra = count - texts.count(text)
            if extra > 0 and not any(m["pid"] in killed for m in stream if m["text"] == text):
                found.append(f"chat {chat}: {text[:40]!r} {extra} extra time(s), no crash")
    return found


def test_three_workers_killed_at_random_moments(pg: Databases, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    note = f"(RELIABILITY_SEED={SEED})"
    started = time.monotonic()
    url = pg.create()
    people = customers(CHATS)
    with PostgresStore.open(url) as store:
        import_orders(store, [c.order() for c in people])
    path = tmp_path / "telegram.jsonl"
    workers = [Worker(url, path, tmp_path, n) for n in range(WORKERS)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            assert w.ready.wait(30), w.log()
        kills = asyncio.run(drive(url, workers, people, rng))
        # the sweep (every 0.3 s on each live worker) sends what a killed worker left behind
        for w in workers:
            assert w.ready.wait(30), w.log()
        wait_for(
            lambda: rows(url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0] == 0,
            15,
            "every committed message delivered",
        )
        for w in workers:
            w.stop()
    finally:
        for w in workers:
            w.kill()
    killed = {pid for w in workers for pid in w.pids[:-1]}  # every pid but the last was killed
    assert kills == KILLS
    got = journal(path)

    # every distinct update exactly one turn
    up = Updates(lambda: NOW)
    for customer in people:
        script = customer.apply_flow(up)
        keys = {f"tg:{u['update_id']}" for u in script}
        stored = {k for (k,) in rows(url, "SELECT dedupe_key FROM processed_updates")}
        assert keys <= stored, f"{customer}: updates without effect {keys - stored} {note}"
        (version,) = rows(
            url, "SELECT version FROM conversations WHERE user_id = %s", str(customer.user.id)
        )[0]
        assert version == len(script), f"{customer}: {version} turns for {len(script)} {note}"
        assert chat_of(script[0]) == customer.user.id
    # refund and ticket invariants: one ticket each (the second request was refused), its
    # submitted event, approved ones paid out in the ledger within the cash paid
    assert rows(url, "SELECT count(*), count(DISTINCT order_id) FROM tickets")[0] == (
        CHATS,
        CHATS,
    ), note
    assert not rows(
        url,
        "SELECT ticket_no FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM ticket_events e"
        " WHERE e.ticket_no = t.ticket_no AND e.kind = 'submitted')",
    )
    assert not rows(
        url,
        "SELECT r.order_id FROM refunds r JOIN orders o USING (order_id) GROUP BY r.order_id,"
        " o.cash_paid_fen HAVING sum(r.amount_fen) > o.cash_paid_fen",
    )
    approved = rows(url, "SELECT count(*) FROM tickets WHERE status = 'approved'")[0][0]
    assert approved == rows(url, "SELECT count(DISTINCT ticket_no) FROM refunds")[0][0]
    assert approved == sum(1 for c in people if c.reason.startswith("7-day")), note
    problems = delivery_problems(url, got, killed)
    assert problems == [], f"{problems} {note}"

    # jobs: three workers whose clock says the reminders are due tick together
    due = {
        int(u)
        for (u,) in rows(url, "SELECT user_id FROM conversations WHERE remind_at IS NOT NULL")
    }
    later = [Worker(url, path, tmp_path, WORKERS + n, minutes=24 * 60) for n in range(WORKERS)]
    try:
        for w in later:
            w.start()
        for w in later:
            assert w.ready.wait(30), w.log()
        wait_for(
            lambda: all(
                any(REMINDER in m["text"] for m in journal(path) if m["chat"] == chat)
                for chat in due
            ),
            10,
            "the reminders",
        )
        time.sleep(1.0)  # several more ticks on every worker
        for w in later:
            w.stop()
    finally:
        for w in later:
            w.kill()
    reminders = Counter(m["chat"] for m in journal(path) if REMINDER in m["text"])
    assert dict(reminders) == dict.fromkeys(due, 1), note
    assert time.monotonic() - started < 60, "the run took longer than a minute"
