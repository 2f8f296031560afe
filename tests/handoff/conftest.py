"""Fixtures of the agent desk tests: the Telegram tests' clock and harness, over the desk's fake
transport and config (tests/handoff/desk.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config
from tests.handoff.desk import Agents, DeskTelegram, desk_config
from tests.telegram.conftest import clock, harness
from tests.telegram.offline import Harness

__all__ = ["clock", "harness"]  # the harness takes `tg` and `config` from here


@pytest.fixture
def tg() -> DeskTelegram:
    return DeskTelegram()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return desk_config(tmp_path)


@pytest.fixture
def agents(harness: Harness, tg: DeskTelegram) -> Agents:
    return Agents(harness, tg)
