"""Fixtures of the Telegram tests; the fakes and the harness are in tests/telegram/offline.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.config import Config
from tests.telegram.offline import NOW, FakeTelegram, Harness, telegram_config


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def tg() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return telegram_config(tmp_path)


@pytest.fixture
async def harness(config: Config, clock: FixedClock, tg: FakeTelegram) -> AsyncIterator[Harness]:
    h = Harness(config, clock, tg)
    try:
        yield await h.start()
    finally:
        await h.stop()
