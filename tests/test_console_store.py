"""`refund-bot console` keeps to its own demo store: demo orders never reach the bot's store."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.console
from bot.cli import main
from bot.store import SqliteStore

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def test_the_console_never_imports_demo_orders_into_the_bots_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "prod.yaml"
    config.write_text(REPO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    real = tmp_path / "real.sqlite3"
    monkeypatch.setenv("REFUND_BOT_DATABASE_URL", f"sqlite:///{real}")
    SqliteStore.open(real).close()  # the bot's store, empty
    lines = iter(["/quit"])
    monkeypatch.setattr(bot.console, "line_reader", lambda: lambda prompt: next(lines))
    assert main(["--config", str(config), "console"]) == 0
    demo = tmp_path / "var" / "console-demo.sqlite3"
    assert f"demo store: {demo}" in capsys.readouterr().out
    assert demo_orders(real) == 0
    assert demo_orders(demo) > 0


def demo_orders(path: Path) -> int:
    store = SqliteStore.open(path)
    try:
        with store.unit_of_work() as uow:
            customer = uow.customer_by_phone("+8613800138000")
            return 0 if customer is None else len(uow.orders_of(customer.customer_id))
    finally:
        store.close()


def test_a_bot_store_at_the_demo_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "odd.yaml"
    text = REPO_CONFIG.read_text(encoding="utf-8")
    config.write_text(
        text.replace("path: var/refund-bot.sqlite3", "path: var/console-demo.sqlite3"),
        encoding="utf-8",
    )
    assert main(["--config", str(config), "console"]) == 2
    assert "is the console's demo store" in capsys.readouterr().err
