"""`run`'s metrics, liveness and readiness over HTTP in polling and webhook mode; Telegram
unreachable at start is one line and a retry, not a traceback."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.config import Secrets
from bot.telegram import run
from bot.testing import Failure, FakeTelegram, Updates
from tests.telegram.support import ALICE, telegram_config
from tests.telegram.test_run import deadline
from tests.telegram.test_webhook import SECRET, free_port

TOKEN = Secrets("123456:TEST-token", None)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float:
    """The value of one sample line `name value` of a Prometheus exposition."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[-1])


def check_endpoints(port: int) -> dict[str, tuple[int, str]]:
    return {path: get(port, path) for path in ("/metrics", "/healthz", "/readyz", "/nope")}


def assert_watched(seen: dict[str, tuple[int, str]]) -> None:
    status, text = seen["/metrics"]
    assert status == 200
    assert metric(text, 'refund_bot_updates_total{kind="message"}') == 1
    assert metric(text, "refund_bot_turn_seconds_count") == 1
    assert metric(text, 'refund_bot_bot_api_calls_total{method="getMe"}') >= 1
    assert metric(text, 'refund_bot_bot_api_calls_total{method="sendMessage"}') >= 1
    assert metric(text, "refund_bot_store_up") == 1
    assert metric(text, "refund_bot_outbox_pending") == 0
    assert metric(text, "refund_bot_overdue_payouts") == 0
    assert metric(text, "refund_bot_handoffs_open") == 0
    assert seen["/healthz"] == (200, "ok\n")
    assert seen["/readyz"] == (200, "ready\n")
    assert seen["/nope"][0] == 404


def test_polling_run_serves_metrics_and_health(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    tg = FakeTelegram()
    start_update = Updates().command(ALICE, "start")
    tg.incoming = [[start_update]]
    seen: dict[str, tuple[int, str]] = {}

    gave_up = deadline()

    def scrape_then_stop(calls: int) -> None:
        if not seen and (tg.sent(ALICE.id) or gave_up()):
            seen.update(check_endpoints(port))
            asyncio.get_running_loop().call_soon(_exit)

    tg.on_get_updates = scrape_then_stop
    config = telegram_config(tmp_path, metrics={"port": port})
    try:
        with caplog.at_level(logging.INFO, logger="bot"):
            assert run(config, TOKEN, request=tg) == 0
    finally:
        asyncio.set_event_loop(None)
    assert_watched(seen)
    messages = [r.getMessage() for r in caplog.records]
    (start,) = [m for m in messages if m.startswith("refund-bot run: polling")]
    assert "store sqlite:///" in start and "0 agent(s)" in start and "working days 20" in start
    assert f"metrics on http://127.0.0.1:{port}/metrics" in start
    (event,) = [r for r in caplog.records if r.name == "bot.events"]
    assert event.getMessage().startswith(
        f"update {start_update['update_id']} chat {ALICE.id} state "
    )
    with pytest.raises(OSError):  # the endpoint went with the bot
        get(port, "/healthz")


def _exit() -> None:
    raise SystemExit


def test_webhook_run_serves_metrics_and_health(tmp_path: Path) -> None:
    port, hook = free_port(), free_port()
    tg = FakeTelegram()
    config = telegram_config(
        tmp_path,
        metrics={"port": port},
        telegram={
            "mode": "webhook",
            "webhook": {"listen": "127.0.0.1", "port": hook, "path": "tg", "url": "https://b.example/tg"},
        },
    )  # fmt: skip
    update = Updates().command(ALICE, "start")
    seen: dict[str, tuple[int, str]] = {}
    errors: list[BaseException] = []
    frozen: list[int] = []

    def client() -> None:
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{hook}/tg",
                        data=json.dumps(update).encode(),
                        headers={
                            "Content-Type": "application/json",
                            "X-Telegram-Bot-Api-Secret-Token": SECRET,
                        },
                    )
                    urllib.request.urlopen(request, timeout=5).close()
                    break
                except OSError:
                    time.sleep(0.05)  # the webhook server is not up yet
            while not tg.sent(ALICE.id) and time.monotonic() < deadline:
                time.sleep(0.05)
            frozen.append(gc.get_freeze_count())  # start-up's heap, out of the collector's walks
            seen.update(check_endpoints(port))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # PTB's own stop signal: a graceful stop

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert run(config, Secrets("123456:TEST-token", SECRET), request=tg) == 0
    finally:
        asyncio.set_event_loop(None)
        thread.join()
    assert not errors
    assert frozen[0] > 10_000 and gc.get_freeze_count() == 0
    assert_watched(seen)


def test_telegram_unreachable_at_start_is_one_line_and_a_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tg = FakeTelegram()
    tg.fail("getMe", Failure.server_error(502), times=2)
    tg.incoming = [[Updates().command(ALICE, "start")]]
    pauses: list[float] = []
    stopping: list[bool] = []

    gave_up = deadline()

    def stop(calls: int) -> None:
        if not stopping and (tg.sent(ALICE.id) or gave_up()):
            stopping.append(True)
            asyncio.get_running_loop().call_soon(_exit)

    tg.on_get_updates = stop
    try:
        with caplog.at_level(logging.INFO):
            assert run(telegram_config(tmp_path), TOKEN, request=tg, sleep=pauses.append) == 0
    finally:
        asyncio.set_event_loop(None)
    assert pauses == [1.0, 2.0]
    failures = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info is None for r in failures)  # no traceback
    assert "trying again in 1 s" in failures[0].getMessage()
    assert tg.texts(ALICE.id)  # and then it ran
