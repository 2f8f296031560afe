"""Chinese working days: official holidays and make-up working days (调休) from chinese-calendar.

For a year the package does not cover yet (it is published a year at a time), fall back to
Monday–Friday, minus the holidays and plus the make-up days listed in config.yaml, and log a
warning once per year. Never raise for an uncovered year: a deadline a day off is better than a
customer who cannot file a ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta

import chinese_calendar

log = logging.getLogger(__name__)


class WorkingCalendar:
    def __init__(
        self, fallback_holidays: Iterable[date] = (), fallback_workdays: Iterable[date] = ()
    ) -> None:
        self._holidays = frozenset(fallback_holidays)
        self._workdays = frozenset(fallback_workdays)
        self._warned: set[int] = set()
        # chinese_calendar.is_workday scans its holiday table on every call (~15 us) and a
        # deadline walks several days per assessment: remember each day's answer (fixed data)
        self._known: dict[date, bool] = {}

    def is_working_day(self, day: date) -> bool:
        """True on a Chinese working day (make-up Saturdays included, holidays excluded)."""
        known = self._known.get(day)
        if known is None:
            try:
                known = bool(chinese_calendar.is_workday(day))
            except NotImplementedError:
                known = self._fallback(day)
            self._known[day] = known
        return known

    def is_covered(self, year: int) -> bool:
        """Whether chinese-calendar knows the official schedule of `year`."""
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def _fallback(self, day: date) -> bool:
        if day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "chinese-calendar has no data for %d: using Monday–Friday and the holidays in "
                "config.yaml calendar.fallback_holidays (%d listed for that year)",
                day.year,
                sum(1 for h in self._holidays if h.year == day.year),
            )
        if day in self._holidays:
            return False
        if day in self._workdays:
            return True
        return day.weekday() < 5

    def add_working_days(self, start: date, count: int) -> date:
        """The `count`-th working day after `start` (start itself not counted); count ≥ 0."""
        if count < 0:
            raise ValueError("count must be ≥ 0")
        day = start
        remaining = count
        while remaining:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days lie after `start` up to and including `end` (0 if end ≤ start)."""
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count
