"""The per-customer incoming rate limit, checked before anything is written.

Kept in each worker's memory, as an approximation: with several webhook workers behind a load
balancer each counts the updates it sees, so up to N × `per_minute` a minute may get through
across N workers (an album counts once per worker that stores a part of it). Everything else the
adapter needs across updates (album parts, the reply-keyboard flag) is in the database."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum

WINDOW_SECONDS = 60.0


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # the first update over the limit: answer politely once
    DROP = "drop"  # the rest until the window has room again: silence


class IncomingLimit:
    """At most `per_minute` updates per customer in any sliding minute."""

    # Only allowed updates count: a customer who keeps flooding still gets `per_minute` turns a
    # minute, and one who stops is heard again as soon as the minute has room.

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._now = monotonic
        self._seen: dict[int, deque[float]] = {}
        self._warned: set[int] = set()
        self._next_sweep = monotonic() + WINDOW_SECONDS

    def __len__(self) -> int:
        """How many customers are tracked (those heard from in the last minute or two)."""
        return len(self._seen)

    def check(self, user_id: int) -> Verdict:
        """Count the update if it is allowed."""
        now = self._now()
        if now >= self._next_sweep:
            self._forget_idle(now)
        seen = self._seen.setdefault(user_id, deque())
        while seen and seen[0] <= now - WINDOW_SECONDS:
            seen.popleft()
        if len(seen) < self.per_minute:
            seen.append(now)
            self._warned.discard(user_id)
            return Verdict.ALLOW
        if user_id in self._warned:
            return Verdict.DROP
        self._warned.add(user_id)
        return Verdict.WARN

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded: customers quiet for a minute start from scratch anyway. Once a
        minute at most, so the sweep costs O(1) per update however many customers are active."""
        self._next_sweep = now + WINDOW_SECONDS
        idle = [u for u, seen in self._seen.items() if not seen or seen[-1] <= now - WINDOW_SECONDS]
        for user_id in idle:
            del self._seen[user_id]
            self._warned.discard(user_id)
