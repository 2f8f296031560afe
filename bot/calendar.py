"""Chinese working days: official holidays and make-up working days (调休) from chinese-calendar.

For a year the package does not cover yet (it is published a year at a time), fall back to
Monday–Friday, minus the holidays and plus the make-up days listed in config.yaml, and log a
warning once per year. Never raise for an uncovered year: a deadline a day off is better than a
customer who cannot file a ticket. Once an installed release covers a year, the package decides
it and the config fallback for that year is ignored.

The official source is injected (`official=`): tests pass an `OfficialTable` so that they do not
depend on which years the installed chinese-calendar happens to cover.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import metadata
from typing import Literal, Protocol

import chinese_calendar

log = logging.getLogger(__name__)

Source = Literal["package", "fallback"]


class OfficialCalendar(Protocol):
    """The State Council's published schedule, for the years it covers."""

    @property
    def name(self) -> str: ...

    def is_workday(self, day: date) -> bool | None: ...  # None: the year is not covered


class ChineseCalendarPackage:
    """The installed chinese-calendar release."""

    def __init__(self) -> None:
        try:
            version = metadata.version("chinesecalendar")
        except metadata.PackageNotFoundError:  # pragma: no cover - installed under another name
            version = "?"
        self.name = f"chinese-calendar {version}"

    def is_workday(self, day: date) -> bool | None:
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None


@dataclass(frozen=True)
class OfficialTable:
    """An official schedule given as data: the years covered, their holidays and make-up days."""

    years: frozenset[int]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    name: str = "table"

    def is_workday(self, day: date) -> bool | None:
        if day.year not in self.years:
            return None
        if day in self.holidays:
            return False
        return day in self.workdays or day.weekday() < 5


@dataclass(frozen=True)
class OnlyYears:
    """An official source limited to some years, the others left to the fallback (a scripted
    dialogue pins what "the package covers" to, whatever release is installed)."""

    inner: OfficialCalendar
    years: frozenset[int]

    @property
    def name(self) -> str:
        return self.inner.name

    def is_workday(self, day: date) -> bool | None:
        return self.inner.is_workday(day) if day.year in self.years else None


class WorkingCalendar:
    def __init__(
        self,
        fallback_holidays: Iterable[date] = (),
        fallback_workdays: Iterable[date] = (),
        official: OfficialCalendar | None = None,
    ) -> None:
        self._holidays = frozenset(fallback_holidays)
        self._workdays = frozenset(fallback_workdays)
        self.official: OfficialCalendar = official or ChineseCalendarPackage()
        self._warned: set[int] = set()
        # chinese_calendar.is_workday scans its holiday table on every call (~15 us) and a
        # deadline walks several days per assessment: remember each day's answer (fixed data)
        self._known: dict[date, bool] = {}

    def is_working_day(self, day: date) -> bool:
        """True on a Chinese working day (make-up Saturdays included, holidays excluded)."""
        known = self._known.get(day)
        if known is None:
            official = self.official.is_workday(day)
            known = self._fallback(day) if official is None else official
            self._known[day] = known
        return known

    def is_covered(self, year: int) -> bool:
        """Whether the official source knows the schedule of `year`."""
        return self.official.is_workday(date(year, 6, 1)) is not None

    def source_of(self, year: int) -> Source:
        """Where the working days of `year` come from."""
        return "package" if self.is_covered(year) else "fallback"

    def fallback_years(self) -> list[int]:
        """The years config.yaml lists fallback days for."""
        return sorted({d.year for d in self._holidays | self._workdays})

    def fallback_counts(self, year: int) -> tuple[int, int]:
        """(holidays, make-up working days) the config lists for `year`."""
        return (
            sum(1 for d in self._holidays if d.year == year),
            sum(1 for d in self._workdays if d.year == year),
        )

    def sources(self, years: Iterable[int]) -> list[str]:
        """Where each year's working days come from, one line per year, for `refund-bot check`:
        these years and every year the config lists fallback days for."""
        lines = []
        for year in sorted({*years, *self.fallback_years()}):
            holidays, workdays = self.fallback_counts(year)
            if self.is_covered(year):
                ignored = (
                    f" (the {holidays + workdays} fallback day(s) listed for it are ignored)"
                    if holidays + workdays
                    else ""
                )
                lines.append(f"{year}: {self.official.name}{ignored}")
            else:
                lines.append(
                    f"{year}: config fallback, Monday–Friday with {holidays} holiday(s) and "
                    f"{workdays} make-up working day(s) from calendar.fallback_* "
                    f"({self.official.name} does not cover it)"
                )
        return lines

    def _fallback(self, day: date) -> bool:
        if day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "chinese-calendar has no data for %d (%s): using Monday–Friday and the holidays "
                "in config.yaml calendar.fallback_holidays (%d listed for that year)",
                day.year,
                self.official.name,
                self.fallback_counts(day.year)[0],
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

    def on_or_after(self, day: date) -> date:
        """`day` if it is a working day, else the next working day (Civil Code Art. 203)."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
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


OPENING_SEARCH_DAYS = 60  # the longest run of rest days looked through (Spring Festival is ~9)


def next_opening(
    local: datetime, start: time, end: time, calendar: WorkingCalendar
) -> datetime | None:
    """When people next answer, for business hours start-end on working days: None while open
    now, else the start of the next working period. `local` is a local (Beijing) moment."""
    for ahead in range(OPENING_SEARCH_DAYS):
        day = local.date() + timedelta(days=ahead)
        if not calendar.is_working_day(day):
            continue
        opens = datetime.combine(day, start, local.tzinfo)
        if ahead == 0 and opens <= local < datetime.combine(day, end, local.tzinfo):
            return None
        if local < opens:
            return opens
    return None
