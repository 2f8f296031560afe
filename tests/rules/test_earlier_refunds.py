"""Refunds across tickets of one order: coupons come back once the whole cash is refunded, and
the same unused days are never paid twice (SPEC §8, issue 14). Amounts in fen, worked by hand."""

from __future__ import annotations

from typing import Any

import pytest

from bot.calendar import WorkingCalendar
from bot.domain import History, Outcome, Quote, Reason, SubReason
from bot.rules import assess, coupon_back, coupon_returned
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays)
NOW = at("2026-11-24 10:00")
# ¥250 cash + ¥50 refundable coupon, a year of 365 days
COUPON_ORDER: dict[str, Any] = {
    "list_price_fen": 30000,
    "cash_paid_fen": 25000,
    "coupon_fen": 5000,
    "coupon_refundable": True,
}


def quote(refunded: int, reason: Reason, sub: SubReason | None, **fields: Any) -> Quote:
    order = make_order(**{**COUPON_ORDER, **fields})
    return assess(order, reason, sub, NOW, CONFIG.policy, CAL, History(refunded_fen=refunded))


SERVICE = (Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING)
# (case, refunded, reason, used days) → amount, coupon returned, last cash line key
CASES: list[tuple[str, int, tuple[Reason, SubReason | None], int, int, int]] = [
    ("one ticket, all of it", 0, (Reason.SEVEN_DAY, None), 0, 25000, 5000),
    ("second ticket, the remaining ¥150", 10000, (Reason.SEVEN_DAY, None), 0, 15000, 5000),
    ("second ticket, service, nothing used", 10000, SERVICE, 0, 15000, 5000),
    ("pro rata, first ticket", 0, SERVICE, 73, 20000, 0),  # 25000 × 292/365 = 20000
    ("pro rata after ¥100 refunded", 10000, SERVICE, 73, 10000, 0),  # 20000 − 10000
    ("pro rata after more than its worth", 22000, SERVICE, 73, 0, 0),  # max(0, 20000 − 22000)
]  # fmt: skip


@pytest.mark.parametrize(
    ("refunded", "reason", "used", "amount", "coupon"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_offer_coupon_and_breakdown(
    refunded: int,
    reason: tuple[Reason, SubReason | None],
    used: int,
    amount: int,
    coupon: int,
) -> None:
    q = quote(refunded, *reason, used_days=used)
    assert q.amount_fen == amount
    assert q.coupon_returned_fen == coupon
    assert q.cap_fen == 25000 - refunded
    if amount:
        assert sum(line.amount_fen for line in q.breakdown) == amount
    if refunded and amount:
        earlier = [line for line in q.breakdown if line.key == "breakdown.already_refunded"]
        assert len(earlier) == 1 and earlier[0].params == {"refunded_fen": refunded}
        assert "precheck.earlier_refunds" in q.explanation
        assert q.outcome is Outcome.REVIEW  # a person decides, within the cap


def test_the_coupon_comes_back_with_the_remaining_cash_not_before() -> None:
    second = quote(10000, Reason.SEVEN_DAY, None)
    assert second.breakdown[-1].key == "breakdown.coupon_returned"
    assert coupon_returned(second, 15000) == 5000
    assert coupon_returned(second, 14999) == 0  # asking for less leaves cash unrefunded


def test_a_partial_amount_is_never_called_full() -> None:
    for reason, sub, key in [
        (Reason.SEVEN_DAY, None, "precheck.seven_day.eligible"),
        (Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING, "precheck.service.full"),
        (Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN, "precheck.mistaken.unused"),
    ]:
        first, second = quote(0, reason, sub), quote(10000, reason, sub)
        assert key in first.explanation and f"{key}_remaining" not in first.explanation
        assert f"{key}_remaining" in second.explanation and key not in second.explanation


def test_an_earlier_refund_turns_an_automatic_approval_into_a_review() -> None:
    twin = make_order(order_id="TWIN", paid_at=at("2026-11-20 11:00"))
    order = make_order()
    alone = assess(
        order, Reason.MISTAKEN_PURCHASE, SubReason.DUPLICATE, NOW, CONFIG.policy, CAL,
        History(orders=(twin,)),
    )  # fmt: skip
    again = assess(
        order, Reason.MISTAKEN_PURCHASE, SubReason.DUPLICATE, NOW, CONFIG.policy, CAL,
        History(orders=(twin,), refunded_fen=1000),
    )  # fmt: skip
    assert alone.outcome is Outcome.AUTO_APPROVE
    assert again.outcome is Outcome.REVIEW and again.review_due is not None
    assert again.amount_fen == 9000


# (case, refunded before, refund now, refundable) → coupon given back (fen): the coupon follows
# what is actually refunded, whoever set the amount (the customer, or an agent within the cap)
COUPON_BACK: list[tuple[str, int, int, bool, int]] = [
    ("all the cash in one refund", 0, 25000, True, 5000),
    ("the remaining ¥150 after ¥100", 10000, 15000, True, 5000),
    ("an agent approves the whole cap of a pro-rata ticket", 0, 25000, True, 5000),
    ("less than the rest", 10000, 10000, True, 0),
    ("the pro-rata ¥200 only", 0, 20000, True, 0),
    ("not refundable", 0, 25000, False, 0),
    ("nothing", 0, 0, True, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("refunded", "refund", "refundable", "back"),
    [case[1:] for case in COUPON_BACK],
    ids=[case[0] for case in COUPON_BACK],
)
def test_the_coupon_follows_the_cash_actually_refunded(
    refunded: int, refund: int, refundable: bool, back: int
) -> None:
    order = make_order(**{**COUPON_ORDER, "coupon_refundable": refundable})
    assert coupon_back(order, refunded, refund) == back
