"""Fixtures of the agent desk tests: the Telegram tests' clock, fake Bot API and harness, with
the desk's config (tests/handoff/desk.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config
from bot.testing import FakeTelegram
from tests.handoff.desk import Agents, desk_config
from tests.telegram.conftest import clock, harness, tg
from tests.telegram.support import ShopHarness

__all__ = ["clock", "harness", "tg"]  # the harness takes `config` from here


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return desk_config(tmp_path)


@pytest.fixture
def agents(harness: ShopHarness, tg: FakeTelegram) -> Agents:
    return Agents(harness, tg)
