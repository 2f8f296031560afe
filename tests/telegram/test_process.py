"""`refund-bot run` as the real process, from outside: the CLI started with its environment and a
config file, talking to a stand-in Bot API server (bot.testing's fake served over loopback HTTP,
`telegram.base_url`), driven as Telegram, customers and attackers would, and stopped by SIGTERM
as a supervisor does.

Webhook mode: the worker listens before it tells Telegram its URL (setWebhook, with the secret);
a POST without the secret is 403 and changes nothing; a customer's update is answered 200 only
once its reply went out; the same update posted again is one turn; SIGTERM drains (an update
being handled is still answered) and exits 0. Polling mode: getUpdates, a reply, the same drain
on SIGTERM. On PostgreSQL: two webhook workers share one database and one update posted to both
is one turn, and a polling worker holds the one polling lease."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import bot
from bot.store import open_store
from bot.telegram._application import POLLING_TAKEN
from bot.testing import TOKEN, WAIT, Call, FakeBotApiServer, FakeTelegram, Updates
from tests.store.postgres import Databases
from tests.telegram.support import ALICE, BOB, free_port, telegram_config

SECRET = "process-Secret_42"
HOOK_URL = "https://bot.example.com/tg-hook"
ROOT = Path(bot.__file__).resolve().parents[1]
STOP = 15.0  # seconds a stopped worker may take to exit
STARTUP = 30.0  # seconds a worker may take to start (about 1.5 s on an idle machine)
WELCOME = "Hi! This is the 小年卡盟"


class Worker:
    """A `refund-bot run` process; its stderr (the log) is read as it comes."""

    def __init__(self, command: list[str], env: dict[str, str], port: int | None) -> None:
        self.port = port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def post(
        self,
        update: dict[str, Any],
        secret: str | None = SECRET,
        client: httpx.Client | None = None,
    ) -> int:
        """Telegram's delivery: POST the update to the webhook (with the secret header)."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        url = f"http://127.0.0.1:{self.port}/tg-hook"
        if client is not None:
            return client.post(url, content=json.dumps(update), headers=headers).status_code
        with httpx.Client(trust_env=False, timeout=2 * WAIT) as own:
            return own.post(url, content=json.dumps(update), headers=headers).status_code

    def wait_for(self, line: str) -> None:
        """Until the log says `line` (at most STOP seconds)."""
        end = time.monotonic() + STOP
        while not any(line in each for each in self.lines):
            assert time.monotonic() < end, f"no {line!r} in the log:\n{self.log}"
            time.sleep(0.02)

    def terminate(self) -> int:
        """SIGTERM, as a supervisor stops it; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, seconds: float = STOP) -> int:
        code = self.process.wait(seconds)
        self._reader.join(WAIT)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self._reader.join(WAIT)

    def assert_clean_log(self) -> None:
        """No traceback, no error, no send left for later."""
        for bad in ("Traceback", " ERROR ", " CRITICAL ", "will retry"):
            assert bad not in self.log, self.log


class World:
    """The stand-in Bot API server and the workers started against it."""

    def __init__(self, tmp_path: Path, server: FakeBotApiServer) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.tg = server.tg
        self.workers: list[Worker] = []
        self.updates = Updates()

    def start(
        self, mode: str, *, database_url: str | None = None, token: str = TOKEN, name: str = "w"
    ) -> Worker:
        """`refund-bot --config FILE run` with the secrets in its environment."""
        port = free_port() if mode == "webhook" else None
        config = telegram_config(
            self.tmp_path,
            telegram={
                "mode": mode,
                "base_url": self.server.url,
                "base_file_url": self.server.file_url,
                "webhook": {
                    "listen": "127.0.0.1",
                    "port": port or 8443,
                    "path": "tg-hook",
                    "url": HOOK_URL,
                },
            },
        )
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFUND_BOT_")}
        env.update(
            REFUND_BOT_TOKEN=token,
            REFUND_BOT_WEBHOOK_SECRET=SECRET,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        if database_url is not None:
            env["REFUND_BOT_DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "bot.cli", "--config", str(path), "run"]
        worker = Worker(command, env, port)
        self.workers.append(worker)
        return worker

    def until(self, condition: Callable[[FakeTelegram], bool], seconds: float = WAIT) -> None:
        """Wait until the fake's state satisfies `condition` (read on the server's thread)."""
        try:
            self.server.until(lambda: condition(self.tg), seconds)
        except TimeoutError:
            logs = "\n".join(f"--- worker {i}:\n{w.log}" for i, w in enumerate(self.workers))
            pytest.fail(f"not within {seconds} s; the workers' logs:\n{logs}")

    def started(self, condition: Callable[[FakeTelegram], bool]) -> None:
        """Wait for what a starting worker does (a start is slow on a busy machine)."""
        self.until(condition, STARTUP)

    def calls(self, method: str) -> list[Call]:
        return self.server.call(lambda: [c for c in self.tg.calls if c.method == method])

    def texts(self, chat_id: int) -> list[str]:
        return self.server.call(lambda: self.tg.texts(chat_id))


def sqlite_rows(path: Path) -> dict[str, int]:
    """What the worker's SQLite store holds of turns: handled updates, conversations, outbox."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        db.close()


def pg_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url) as db:
        counts = {}
        for table in TABLES:
            row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            counts[table] = int(row[0])
        return counts


TABLES = ("processed_updates", "conversations", "outbox")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeBotApiServer(FakeTelegram()) as server:
        made = World(tmp_path, server)
        try:
            yield made
        finally:
            for worker in made.workers:
                worker.kill()


def in_background(function: Callable[[], int]) -> Future[int]:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(function)
    pool.shutdown(wait=False)
    return future


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_worker_answers_only_telegram_and_only_after_the_reply_went_out(
    world: World,
) -> None:
    listening: list[bool] = []

    def at_set_webhook(call: Call) -> None:  # on the server's thread, before the worker hears
        if call.method == "setWebhook" and worker.port is not None:
            with socket.socket() as probe:
                listening.append(probe.connect_ex(("127.0.0.1", worker.port)) == 0)

    world.server.call(lambda: world.tg.watch(at_set_webhook))
    worker = world.start("webhook")
    world.started(lambda tg: bool(tg.of("setWebhook")))
    (hook,) = [c.params for c in world.calls("setWebhook")]
    assert hook["url"] == HOOK_URL
    assert hook["secret_token"] == SECRET
    assert hook["allowed_updates"] == ["message", "callback_query"]
    assert listening == [True]  # Telegram's first delivery finds the port open
    store = world.tmp_path / "bot.sqlite3"

    start = world.updates.command(ALICE, "start")
    assert worker.post(start, secret=None) == 403
    assert worker.post(start, secret="guessed") == 403
    assert sqlite_rows(store) == dict.fromkeys(TABLES, 0)
    assert world.texts(ALICE.id) == []

    # the reply held in the network: Telegram hears nothing until it went out
    gate = world.server.call(lambda: world.tg.hold("sendMessage"))
    answered = in_background(lambda: worker.post(start))
    world.until(lambda tg: bool(tg.sent(ALICE.id)))
    time.sleep(0.3)
    assert not answered.done()
    world.server.call(gate.release)
    assert answered.result(WAIT) == 200
    (reply,) = world.calls("sendMessage")
    assert reply.result is not None and reply.params["text"].startswith(WELCOME)

    # Telegram delivers it again (its answer was slow or lost): one turn all the same
    assert worker.post(start) == 200
    assert len(world.texts(ALICE.id)) == 1
    assert sqlite_rows(store) == {"processed_updates": 1, "conversations": 1, "outbox": 1}

    assert worker.terminate() == 0
    worker.assert_clean_log()


def test_sigterm_drains_the_webhook_worker_the_update_in_hand_is_answered(world: World) -> None:
    worker = world.start("webhook")
    world.started(lambda tg: bool(tg.of("setWebhook")))
    with httpx.Client(trust_env=False, timeout=2 * WAIT) as kept_alive:
        # a connection Telegram keeps open between deliveries
        assert (
            worker.post(world.updates.command(BOB, "start"), secret=None, client=kept_alive) == 403
        )
        gate = world.server.call(lambda: world.tg.hold("sendMessage"))
        answered = in_background(lambda: worker.post(world.updates.command(ALICE, "start")))
        world.until(lambda tg: bool(tg.sent(ALICE.id)))

        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for("webhook: stopping; 1 update(s) in hand")
        time.sleep(0.2)
        assert worker.process.poll() is None  # still draining
        # a new delivery while stopping: Telegram is told to come again (to another worker)
        assert worker.post(world.updates.command(BOB, "start"), client=kept_alive) == 503
        with pytest.raises(httpx.ConnectError):  # and the port is closed
            worker.post(world.updates.command(BOB, "start"))
        world.server.call(gate.release)

        assert answered.result(WAIT) == 200
        assert worker.wait() == 0
    (reply,) = world.calls("sendMessage")
    assert reply.result is not None and reply.params["chat_id"] == ALICE.id
    rows = sqlite_rows(world.tmp_path / "bot.sqlite3")
    assert rows == {"processed_updates": 1, "conversations": 1, "outbox": 1}
    worker.assert_clean_log()


# -- polling ----------------------------------------------------------------------------------


def test_polling_worker_answers_and_stops_on_sigterm_after_the_update_in_hand(
    world: World,
) -> None:
    worker = world.start("polling")
    world.server.push(world.updates.command(ALICE, "start"))
    world.started(lambda tg: bool(tg.sent(ALICE.id)))
    assert world.texts(ALICE.id)[0].startswith(WELCOME)
    assert world.calls("deleteWebhook")  # polling and a webhook exclude each other

    gate = world.server.call(lambda: world.tg.hold("sendMessage"))
    world.server.push(world.updates.command(BOB, "start"))
    world.until(lambda tg: bool(tg.sent(BOB.id)))
    worker.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    world.server.call(gate.release)
    assert worker.wait() == 0
    assert [c.result is not None for c in world.calls("sendMessage")] == [True, True]
    rows = sqlite_rows(world.tmp_path / "bot.sqlite3")
    assert rows == {"processed_updates": 2, "conversations": 2, "outbox": 2}
    worker.assert_clean_log()


def test_a_token_telegram_refuses_ends_the_worker_with_exit_1(world: World) -> None:
    worker = world.start("polling", token="999:not-this-bot")
    assert worker.wait(STARTUP) == 1
    assert "Telegram refuses the token" in worker.log
    assert "Traceback" not in worker.log


# -- PostgreSQL: several workers --------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases()
    yield databases
    databases.close()


def test_two_webhook_workers_on_one_postgresql_database_make_one_turn_of_a_repeat(
    world: World, pg: Databases
) -> None:
    url = pg.create()
    first = world.start("webhook", database_url=url, name="first")
    second = world.start("webhook", database_url=url, name="second")
    world.started(lambda tg: len(tg.of("setWebhook")) == 2)

    # Telegram's redelivery reaches the other worker while the first still sends the reply:
    # the second waits for the first's lease on the chat's outbox, and sends nothing again
    start = world.updates.command(ALICE, "start")
    gate = world.server.call(lambda: world.tg.hold("sendMessage"))
    answered = in_background(lambda: first.post(start))
    world.until(lambda tg: bool(tg.sent(ALICE.id)))
    again = in_background(lambda: second.post(start))
    time.sleep(0.3)
    assert not answered.done() and not again.done()
    world.server.call(gate.release)
    assert [answered.result(WAIT), again.result(WAIT)] == [200, 200]
    assert second.post(world.updates.command(BOB, "start")) == 200
    assert [len(world.texts(u.id)) for u in (ALICE, BOB)] == [1, 1]
    assert pg_rows(url) == {"processed_updates": 2, "conversations": 2, "outbox": 2}

    assert [w.terminate() for w in (first, second)] == [0, 0]
    for worker in (first, second):
        worker.assert_clean_log()


def test_a_polling_worker_holds_the_polling_lease_until_it_stops(
    world: World, pg: Databases
) -> None:
    """The real worker takes the database's polling lease for its whole run (what refuses a
    second poller, `POLLING_TAKEN`: tests/telegram/test_workers.py) and lets go when stopped."""
    url = pg.create()
    polling = world.start("polling", database_url=url)
    world.started(lambda tg: bool(tg.of("getUpdates")))
    other = open_store(url)
    try:
        with other.lease("polling") as taken:
            assert taken is None, POLLING_TAKEN
        assert polling.terminate() == 0
        with other.lease("polling") as taken:
            assert taken is not None  # free again: the next worker may poll
    finally:
        other.close()
    polling.assert_clean_log()
