"""The clock is injected: rules take `now` as an argument, services take a Clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.localtime import SHANGHAI, to_local

__all__ = ["SHANGHAI", "Clock", "FixedClock", "SystemClock", "to_local"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests and scripted dialogues: it only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = when
