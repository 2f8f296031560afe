"""Chinese working days, and the fallback for years the official calendar does not cover.

The official source is injected (`OfficialTable`), so these tests give the same answers whichever
years the installed chinese-calendar release covers; one test checks the package itself for a
year every release since 2025 has had (2026).
"""

from __future__ import annotations

import logging
from datetime import date

import pytest

from bot.calendar import ChineseCalendarPackage, OfficialTable, OnlyYears, WorkingCalendar

# The published 2026 schedule around National Day, as chinese-calendar has it.
OFFICIAL_2026 = OfficialTable(
    years=frozenset({2026}),
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    workdays=frozenset({date(2026, 9, 20), date(2026, 10, 10)}),
    name="table 2026",
)
# What a release that also covers 2027 would say about its New Year (a made-up schedule, so that
# the test notices which source answered).
OFFICIAL_2026_2027 = OfficialTable(
    years=frozenset({2026, 2027}),
    holidays=OFFICIAL_2026.holidays | {date(2027, 1, 1), date(2027, 1, 4)},
    workdays=OFFICIAL_2026.workdays | {date(2027, 1, 9)},
    name="table 2026-2027",
)
FALLBACK = {"fallback_holidays": [date(2027, 1, 1)], "fallback_workdays": [date(2027, 2, 20)]}


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 10, 1), False),  # National Day
        (date(2026, 10, 10), True),  # make-up Saturday (调休)
        (date(2026, 10, 11), False),  # plain Sunday
        (date(2026, 9, 20), True),  # make-up Sunday
        (date(2026, 11, 24), True),  # plain Tuesday
    ],
)
def test_official_calendar(day: date, working: bool) -> None:
    assert WorkingCalendar(official=OFFICIAL_2026).is_working_day(day) is working


def test_the_installed_package_knows_2026() -> None:
    package = ChineseCalendarPackage()
    assert package.name.startswith("chinese-calendar ")
    assert package.is_workday(date(2026, 10, 1)) is False
    assert package.is_workday(date(2026, 10, 10)) is True


def test_add_working_days_skips_holidays_and_counts_make_up_days() -> None:
    cal = WorkingCalendar(official=OFFICIAL_2026)
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert cal.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert cal.add_working_days(date(2026, 11, 24), 0) == date(2026, 11, 24)
    assert cal.working_days_between(date(2026, 9, 30), date(2026, 10, 10)) == 3


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 27), date(2026, 11, 27)),  # a Friday: itself
        (date(2026, 11, 28), date(2026, 11, 30)),  # Saturday → Monday
        (date(2026, 10, 3), date(2026, 10, 8)),  # National Day → the first day back
        (date(2026, 10, 10), date(2026, 10, 10)),  # a 调休 Saturday is a working day
    ],
)
def test_on_or_after_moves_a_rest_day_to_the_next_working_day(day: date, expected: date) -> None:
    assert WorkingCalendar(official=OFFICIAL_2026).on_or_after(day) == expected


def test_uncovered_year_falls_back_to_weekdays_minus_configured_holidays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = WorkingCalendar(**FALLBACK, official=OFFICIAL_2026)
    assert not cal.is_covered(2027)
    with caplog.at_level(logging.WARNING, logger="bot.calendar"):
        assert cal.is_working_day(date(2027, 1, 1)) is False  # configured holiday
        assert cal.is_working_day(date(2027, 1, 2)) is False  # Saturday
        assert cal.is_working_day(date(2027, 1, 4)) is True  # Monday
        assert cal.is_working_day(date(2027, 2, 20)) is True  # configured make-up Saturday
        assert cal.add_working_days(date(2026, 12, 30), 3) == date(2027, 1, 5)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per day


def test_a_release_that_covers_the_year_wins_over_the_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = WorkingCalendar(**FALLBACK, official=OFFICIAL_2026_2027)
    assert cal.is_covered(2027)
    with caplog.at_level(logging.WARNING, logger="bot.calendar"):
        assert cal.is_working_day(date(2027, 1, 4)) is False  # the release's holiday
        assert cal.is_working_day(date(2027, 1, 9)) is True  # the release's make-up Saturday
        assert cal.is_working_day(date(2027, 2, 20)) is False  # the fallback's is ignored
    assert caplog.records == []  # no fallback, no warning


def test_sources_say_which_years_come_from_where() -> None:
    older = WorkingCalendar(**FALLBACK, official=OFFICIAL_2026)
    assert older.sources([2026]) == [
        "2026: table 2026",
        "2027: config fallback, Monday–Friday with 1 holiday(s) and 1 make-up working day(s) "
        "from calendar.fallback_* (table 2026 does not cover it)",
    ]
    newer = WorkingCalendar(**FALLBACK, official=OFFICIAL_2026_2027)
    assert newer.sources([2026, 2027]) == [
        "2026: table 2026-2027",
        "2027: table 2026-2027 (the 2 fallback day(s) listed for it are ignored)",
    ]


def test_only_years_hides_the_other_years_of_a_source() -> None:
    limited = OnlyYears(OFFICIAL_2026_2027, frozenset({2026}))
    assert limited.name == "table 2026-2027"
    assert limited.is_workday(date(2026, 10, 1)) is False
    assert limited.is_workday(date(2027, 1, 4)) is None


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(official=OFFICIAL_2026).add_working_days(date(2026, 1, 1), -1)
