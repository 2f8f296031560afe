"""Every bot process a test starts is stopped at its end, whatever the test's outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.reliability.support import BotProcess

Spawn = Callable[..., BotProcess]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[BotProcess] = []

    def start(*args: Any, **kwargs: Any) -> BotProcess:
        bot = BotProcess(*args, **kwargs)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.close()
