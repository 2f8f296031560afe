"""`refund-bot run`: secrets from the environment, and a real polling run over the fake transport."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Secrets
from bot.telegram import run
from bot.testing import WAIT, FakeTelegram, Updates
from tests.telegram.support import ALICE, BOB, telegram_config

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def deadline(seconds: float = WAIT) -> Callable[[], bool]:
    """The bound of a polling run that waits for a reply: the turn runs in a thread, so
    getUpdates may be called many times before it ends; wait on time, not on calls."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end


def test_run_without_a_token_exits_2_naming_the_variable(tmp_path: Path) -> None:
    err = io.StringIO()
    assert run(telegram_config(tmp_path), Secrets(None, None), stderr=err) == 2
    assert "REFUND_BOT_TOKEN is not set" in err.getvalue()
    assert not (tmp_path / "bot.sqlite3").exists()  # nothing was started


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "REFUND_BOT_WEBHOOK_SECRET is not set"),
        ("has spaces and ünïcode", "REFUND_BOT_WEBHOOK_SECRET may only hold"),
    ],
)
def test_webhook_mode_needs_a_valid_secret(
    tmp_path: Path, secret: str | None, problem: str
) -> None:
    config = telegram_config(
        tmp_path,
        telegram={"mode": "webhook", "webhook": {"url": "https://bot.example.com/telegram"}},
    )
    err = io.StringIO()
    assert run(config, Secrets("123:abc", secret), stderr=err) == 2
    assert problem in err.getvalue()


def test_the_cli_run_command_checks_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REFUND_BOT_TOKEN", raising=False)
    assert main(["--config", str(REPO_CONFIG), "run"]) == 2
    assert "refund-bot run: REFUND_BOT_TOKEN is not set" in capsys.readouterr().err


def raise_system_exit() -> None:
    raise SystemExit


def test_polling_run_answers_an_update_and_stops_cleanly(tmp_path: Path) -> None:
    """run_polling for real: deleteWebhook, commands, getUpdates, a reply; SIGTERM-like stop."""
    tg = FakeTelegram()
    tg.incoming = [[Updates().command(ALICE, "start")]]

    stopping: list[bool] = []
    frozen_while_serving: list[int] = []

    gave_up = deadline()

    def stop_after_reply(calls: int) -> None:
        frozen_while_serving.append(gc.get_freeze_count())
        if not stopping and (tg.sent(ALICE.id) or gave_up()):
            stopping.append(True)
            # what PTB's SIGTERM handler does: SystemExit out of the loop, then a graceful stop
            asyncio.get_running_loop().call_soon(raise_system_exit)

    tg.on_get_updates = stop_after_reply
    try:
        assert run(telegram_config(tmp_path), Secrets("123456:TEST-token", None), request=tg) == 0
    finally:
        asyncio.set_event_loop(None)  # run_polling left its closed loop as the current one
    methods = [c.method for c in tg.calls]
    assert methods[0] == "getMe"
    assert methods.index("setMyCommands") < methods.index(
        "deleteWebhook"
    )  # post_init, then polling
    assert methods.count("setMyCommands") == 3
    assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
    polls = tg.of("getUpdates")
    assert polls[0].get("allowed_updates") == ["message", "callback_query"]
    # served with start-up's objects out of the cycle collector's walks, given back after
    assert min(frozen_while_serving) > 10_000
    assert gc.get_freeze_count() == 0


def test_polling_skips_an_update_it_cannot_parse_and_serves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One unreadable update in a batch used to make polling fetch that batch forever."""
    tg = FakeTelegram()
    up = Updates()
    broken = up.unparsable(BOB)
    start = up.command(ALICE, "start")
    tg.incoming = [[broken, start]]
    stopping: list[bool] = []

    gave_up = deadline()

    def stop_after_reply(calls: int) -> None:
        if not stopping and (tg.sent(ALICE.id) or gave_up()):
            stopping.append(True)
            asyncio.get_running_loop().call_soon(raise_system_exit)

    tg.on_get_updates = stop_after_reply
    try:
        with caplog.at_level(logging.ERROR, logger="bot.telegram._updates"):
            config = telegram_config(tmp_path)
            assert run(config, Secrets("123456:TEST-token", None), request=tg) == 0
    finally:
        asyncio.set_event_loop(None)
    assert tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
    offsets = [p.get("offset") for p in tg.of("getUpdates")]
    assert start["update_id"] + 1 in offsets  # the offset moved past both
    (line,) = [r.getMessage() for r in caplog.records if "cannot be parsed" in r.getMessage()]
    assert f"update {broken['update_id']} (message)" in line
