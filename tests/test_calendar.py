"""Chinese working days, and the fallback for years chinese-calendar does not cover."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from bot.calendar import WorkingCalendar


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
    assert WorkingCalendar().is_working_day(day) is working


def test_add_working_days_skips_holidays_and_counts_make_up_days() -> None:
    cal = WorkingCalendar()
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert cal.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert cal.add_working_days(date(2026, 11, 24), 0) == date(2026, 11, 24)
    assert cal.working_days_between(date(2026, 9, 30), date(2026, 10, 10)) == 3


def test_uncovered_year_falls_back_to_weekdays_minus_configured_holidays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = WorkingCalendar(
        fallback_holidays=[date(2027, 1, 1)], fallback_workdays=[date(2027, 2, 20)]
    )
    assert not cal.is_covered(2027)
    with caplog.at_level(logging.WARNING, logger="bot.calendar"):
        assert cal.is_working_day(date(2027, 1, 1)) is False  # configured holiday
        assert cal.is_working_day(date(2027, 1, 2)) is False  # Saturday
        assert cal.is_working_day(date(2027, 1, 4)) is True  # Monday
        assert cal.is_working_day(date(2027, 2, 20)) is True  # configured make-up Saturday
        assert cal.add_working_days(date(2026, 12, 30), 3) == date(2027, 1, 5)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per day


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        WorkingCalendar().add_working_days(date(2026, 1, 1), -1)
