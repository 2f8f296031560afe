"""Fixtures of the Telegram tests: the fake Bot API and the harness of bot.testing, with the
shop of tests/telegram/support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.config import Config
from bot.testing import FakeTelegram
from tests.telegram.support import NOW, ShopHarness, telegram_config


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def tg(clock: FixedClock) -> FakeTelegram:
    return FakeTelegram(clock.now)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return telegram_config(tmp_path)


@pytest.fixture
async def harness(
    config: Config, clock: FixedClock, tg: FakeTelegram
) -> AsyncIterator[ShopHarness]:
    h = ShopHarness(config, clock, tg)
    try:
        yield await h.start()
    finally:
        await h.stop()
