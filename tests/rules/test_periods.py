"""Periods as the Civil Code counts them (Art. 201–203), issue 14.

The working-day calendar is injected (an `OfficialTable` for 2026, the config fallback for 2027),
so the answers do not depend on which years the installed chinese-calendar covers.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.calendar import OfficialTable, WorkingCalendar
from bot.config import Policy
from bot.domain import History, Outcome, Reason, SubReason
from bot.rules import assess, month_boundary, seven_day_last_day, usage
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
OFFICIAL_2026 = OfficialTable(
    years=frozenset({2026}),
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    workdays=frozenset({date(2026, 9, 20), date(2026, 10, 10)}),
)
CAL = WorkingCalendar(
    CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays, official=OFFICIAL_2026
)
NO_EXTENSION: Policy = CONFIG.policy.model_copy(
    update={
        "seven_day": CONFIG.policy.seven_day.model_copy(update={"extend_to_working_day": False})
    }
)


# -- Art. 202: months end on the corresponding day, or the month's last day --------------------


@pytest.mark.parametrize(
    ("start", "months", "boundary"),
    [
        (date(2026, 1, 15), 1, date(2026, 2, 15)),  # corresponding day exists
        (date(2026, 1, 31), 1, date(2026, 3, 1)),  # none: through 02-28, next period 03-01
        (date(2028, 1, 31), 1, date(2028, 3, 1)),  # leap year: through 02-29
        (date(2026, 1, 31), 2, date(2026, 3, 31)),
        (date(2026, 3, 31), 1, date(2026, 5, 1)),  # April has no 31st
        (date(2026, 1, 31), 12, date(2027, 1, 31)),
        (date(2026, 1, 1), 0, date(2026, 1, 1)),
    ],
)
def test_month_boundary(start: date, months: int, boundary: date) -> None:
    assert month_boundary(start, months) == boundary


@pytest.mark.parametrize(
    ("start", "used_days", "months_used"),
    [
        ("2026-01-31", 29, 1),  # used 01-31 through 02-28: one month, not two
        ("2026-01-31", 30, 2),  # into 03-01: the second month has started
        ("2026-01-15", 31, 1),  # through 02-14
        ("2026-01-15", 32, 2),
        ("2026-01-01", 0, 0),
    ],
)
def test_months_used(start: str, used_days: int, months_used: int) -> None:
    begin = at(f"{start} 00:00")
    order = make_order(paid_at=begin, service_end=begin + timedelta(days=365), used_days=used_days)
    assert usage(order, "month").used == months_used
    assert usage(order, "month").total == 12


def test_a_card_from_01_31_used_through_02_28_pays_back_eleven_twelfths() -> None:
    begin = at("2026-01-31 00:00")
    order = make_order(paid_at=begin, service_end=at("2027-01-31 00:00"), used_days=29)
    pol = CONFIG.policy.model_copy(update={"pro_rata_unit": "month"})
    q = assess(
        order, Reason.SERVICE_ISSUE, SubReason.SERVICE_INTERRUPTED, at("2026-03-01 10:00"), pol,
        CAL, History(),
    )  # fmt: skip
    assert q.breakdown[1].params == {"used": 1, "total": 12}
    assert q.amount_fen == 9167  # 10000 × 11/12 = 9166.67 → 9167


# -- Art. 203: a window ending on a rest day ends on the next working day ----------------------


@pytest.mark.parametrize(
    ("paid", "extended", "plain"),
    [
        ("2026-11-20 10:00", "2026-11-27", "2026-11-27"),  # ends Friday: unchanged
        ("2026-11-21 10:00", "2026-11-30", "2026-11-28"),  # ends Saturday → Monday
        ("2026-11-22 10:00", "2026-11-30", "2026-11-29"),  # ends Sunday → Monday
        ("2026-09-26 10:00", "2026-10-08", "2026-10-03"),  # ends in National Day → 10-08
        ("2026-10-03 10:00", "2026-10-10", "2026-10-10"),  # ends on a 调休 Saturday: working
        ("2026-09-12 10:00", "2026-09-20", "2026-09-19"),  # Sat 09-19 → 调休 Sunday 09-20
        ("2026-12-25 10:00", "2027-01-04", "2027-01-01"),  # 元旦 from the 2027 fallback → Monday
        ("2027-01-29 10:00", "2027-02-09", "2027-02-05"),  # fallback 春节 + weekend → Tue 02-09
    ],
)
def test_seven_day_window_extends_over_rest_days(paid: str, extended: str, plain: str) -> None:
    order = make_order(paid_at=at(paid))
    assert seven_day_last_day(order, CONFIG.policy, CAL).isoformat() == extended
    assert seven_day_last_day(order, NO_EXTENSION, CAL).isoformat() == plain


def test_a_request_on_the_monday_after_a_weekend_end_is_still_in_time() -> None:
    order = make_order(paid_at=at("2026-11-21 10:00"))  # day 7 is Saturday 11-28
    monday = at("2026-11-30 20:00")
    on = assess(order, Reason.SEVEN_DAY, None, monday, CONFIG.policy, CAL, History())
    off = assess(order, Reason.SEVEN_DAY, None, monday, NO_EXTENSION, CAL, History())
    assert on.outcome is Outcome.AUTO_APPROVE
    assert on.explanation_params["last_day"] == "2026-11-30"
    assert off.outcome is Outcome.REFUSED
    assert off.explanation == ("precheck.seven_day.window_passed",)


def test_the_extension_is_on_by_default() -> None:
    assert CONFIG.policy.seven_day.extend_to_working_day is True
