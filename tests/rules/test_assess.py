"""Table-driven cases for every rule of SPEC §2 and every scenario of the source article."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import pytest

from bot.calendar import ChineseCalendarPackage, OnlyYears, WorkingCalendar
from bot.config import Config, Policy, parse_config
from bot.domain import (
    History,
    Order,
    Outcome,
    Priority,
    Reason,
    SubReason,
    TicketStatus,
    TicketSummary,
)
from bot.rules import assess, coupon_returned
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays)
NOW = at("2026-11-24 10:00")  # a Tuesday


def policy(**overrides: Any) -> Policy:
    """The shipped policy with some sections replaced."""
    data = CONFIG.model_dump(mode="json")
    data["policy"].update(overrides)
    cfg: Config = parse_config(data)
    return cfg.policy


def run(
    order: Order,
    reason: Reason,
    sub: SubReason | None = None,
    now: Any = NOW,
    pol: Policy | None = None,
    history: History | None = None,
) -> Any:
    return assess(order, reason, sub, now, pol or CONFIG.policy, CAL, history or History())


def ticket(
    order_id: str, status: TicketStatus, rejected_days_ago: int | None = None
) -> TicketSummary:
    rejected = NOW - timedelta(days=rejected_days_ago) if rejected_days_ago is not None else None
    return TicketSummary(
        ticket_no="T20261001-0001",
        order_id=order_id,
        status=status,
        created_at=NOW - timedelta(days=200),
        rejected_at=rejected,
    )


# -- 七天无理由 ---------------------------------------------------------------------------------


def test_seven_day_unused_small_amount_is_a_fast_refund() -> None:
    q = run(make_order(), Reason.SEVEN_DAY)
    assert q.outcome is Outcome.AUTO_APPROVE
    assert q.amount_fen == 10000
    assert "precheck.fast_refund" in q.explanation
    assert q.legal_refs == ("cpl_25",)
    assert q.review_due is None
    assert q.evidence.min_count == 0


def test_seven_day_above_fast_refund_limit_goes_to_review_in_three_working_days() -> None:
    q = run(make_order(list_price_fen=29900, cash_paid_fen=29900), Reason.SEVEN_DAY)
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 29900
    assert q.priority is Priority.NORMAL
    assert q.review_due == date(2026, 11, 27)  # Tue + 3 working days = Fri


@pytest.mark.parametrize("category", ["game_points", "phone_topup"])
def test_seven_day_refused_for_instant_virtual_goods_confirmed_at_purchase(category: str) -> None:
    q = run(make_order(category=category, activation_exclusion_confirmed=True), Reason.SEVEN_DAY)
    assert q.outcome is Outcome.REFUSED
    assert q.amount_fen == 0
    assert q.explanation == ("precheck.seven_day.excluded_confirmed",)
    assert q.explanation_params["category"] == category
    assert "service_issue" in q.offers and "agent" in q.offers


def test_excluded_categories_come_from_config() -> None:
    pol = policy(seven_day={"window_days": 7, "excluded_categories": ["phone_topup"]})
    assert run(make_order(category="game_points"), Reason.SEVEN_DAY, pol=pol).outcome is (
        Outcome.AUTO_APPROVE
    )


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (at("2026-11-27 23:59"), Outcome.AUTO_APPROVE),  # the window's last day
        (at("2026-11-28 00:00"), Outcome.REFUSED),  # the day after
    ],
)
def test_seven_day_window_counts_from_the_day_after_purchase(now: Any, outcome: Outcome) -> None:
    q = run(make_order(paid_at=at("2026-11-20 10:00")), Reason.SEVEN_DAY, now=now)
    assert q.outcome is outcome
    assert q.explanation_params["last_day"] == "2026-11-27"


def test_seven_day_window_starts_at_service_start_when_later() -> None:
    order = make_order(paid_at=at("2026-11-10 10:00"), service_start=at("2026-11-20 00:00"))
    assert run(order, Reason.SEVEN_DAY, now=at("2026-11-26 12:00")).outcome is Outcome.AUTO_APPROVE


def test_seven_day_window_uses_shanghai_dates_not_utc() -> None:
    # 2026-11-27 23:30 in Shanghai is 15:30 UTC the same day; 2026-11-28 00:30 Shanghai is still
    # the 27th in UTC but already the day after the window in Shanghai.
    order = make_order(paid_at=at("2026-11-20 10:00"))
    assert run(order, Reason.SEVEN_DAY, now=at("2026-11-28 00:30")).outcome is Outcome.REFUSED


def test_seven_day_not_supported_by_the_product() -> None:
    q = run(make_order(seven_day_supported=False), Reason.SEVEN_DAY)
    assert q.outcome is Outcome.REFUSED
    assert q.explanation == ("precheck.seven_day.not_supported",)


def test_activated_order_is_not_just_refused_it_offers_the_dispute_path() -> None:
    order = make_order(activated_at=at("2026-11-20 10:05"), activation_exclusion_confirmed=True)
    q = run(order, Reason.SEVEN_DAY)
    assert q.outcome is Outcome.REFUSED
    assert q.offers[0] == "activation_dispute"
    assert q.explanation == ("precheck.seven_day.activated", "precheck.activation.confirmed")
    assert "measures_art7" in q.legal_refs


def test_activated_without_purchase_time_confirmation_says_so() -> None:
    order = make_order(activated_at=at("2026-11-20 10:05"), activation_exclusion_confirmed=False)
    q = run(order, Reason.SEVEN_DAY)
    assert "precheck.activation.not_confirmed" in q.explanation
    assert "precheck.activation.confirmed" not in q.explanation


def test_activation_dispute_goes_to_review_for_the_full_amount() -> None:
    order = make_order(activated_at=at("2026-11-20 10:05"), activation_exclusion_confirmed=True)
    q = run(order, Reason.SEVEN_DAY, SubReason.ACTIVATION_DISPUTE)
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 10000
    assert q.evidence.min_count == 1  # proof of no real use: no watch history, no progress
    assert q.evidence.hint_key == "evidence.hint.seven_day_activation_dispute"
    assert q.legal_refs == ("cpl_25", "measures_art7", "ecl_49")
    assert "precheck.activation.confirmed" in q.explanation


def test_used_days_without_activation_also_count_as_used() -> None:
    q = run(make_order(used_days=2, activation_exclusion_confirmed=True), Reason.SEVEN_DAY)
    assert q.outcome is Outcome.REFUSED
    assert "activation_dispute" in q.offers


def test_fast_refund_blocked_by_a_recent_rejection_but_not_an_old_one() -> None:
    recent = History(tickets=(ticket("OTHER", TicketStatus.CLOSED, rejected_days_ago=30),))
    old = History(tickets=(ticket("OTHER", TicketStatus.CLOSED, rejected_days_ago=120),))
    assert run(make_order(), Reason.SEVEN_DAY, history=recent).outcome is Outcome.REVIEW
    assert run(make_order(), Reason.SEVEN_DAY, history=old).outcome is Outcome.AUTO_APPROVE


def test_fast_refund_can_be_switched_off() -> None:
    pol = policy(fast_refund={"enabled": False})
    assert run(make_order(), Reason.SEVEN_DAY, pol=pol).outcome is Outcome.REVIEW


# -- 服务未达标 ---------------------------------------------------------------------------------


def test_benefits_missing_nothing_delivered_is_a_full_refund_with_evidence() -> None:
    q = run(make_order(), Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING)
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 10000
    assert q.evidence.min_count == 1
    assert "precheck.service.full" in q.explanation
    assert "precheck.service.agent_may_adjust" in q.explanation
    assert q.legal_refs == ("cpl_53", "spc_prepaid_2025")


def test_pro_rata_by_day_365_days_30_used_is_91_78() -> None:
    order = make_order(used_days=30, activated_at=at("2026-11-20 11:00"))
    order = order.model_copy(update={"service_end": order.service_start + timedelta(days=365)})
    q = run(order, Reason.SERVICE_ISSUE, SubReason.CONTENT_MISMATCH)
    assert q.amount_fen == 9178  # 10000 × 335 / 365 = 9178.08
    assert [line.key for line in q.breakdown] == ["breakdown.cash_paid", "breakdown.used_days"]
    assert q.breakdown[1].amount_fen == -822
    assert q.breakdown[1].params == {"used": 30, "total": 365}


def test_article_example_100_yuan_12_months_1_used_refunds_91_67_not_17() -> None:
    order = make_order(
        paid_at=at("2026-01-01 00:00"),
        service_end=at("2027-01-01 00:00"),
        used_days=30,
        activated_at=at("2026-01-01 08:00"),
    )
    q = run(order, Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN, pol=policy(pro_rata_unit="month"))
    assert q.amount_fen == 9167  # 100 − 100÷12×1 = 91.67 (the article's 17 is wrong)
    assert q.amount_fen != 1700
    assert q.breakdown[1].key == "breakdown.used_months"
    assert q.breakdown[1].params == {"used": 1, "total": 12}
    assert q.breakdown[1].amount_fen == -833


def test_a_started_month_counts_as_used() -> None:
    order = make_order(
        paid_at=at("2026-01-01 00:00"), service_end=at("2027-01-01 00:00"), used_days=32
    )
    q = run(
        order,
        Reason.SERVICE_ISSUE,
        SubReason.SERVICE_INTERRUPTED,
        pol=policy(pro_rata_unit="month"),
    )
    assert q.breakdown[1].params == {"used": 2, "total": 12}
    assert q.amount_fen == 8333


def test_merchant_unreachable_gets_the_priority_channel_and_platform_liability() -> None:
    order = make_order(category="gym", merchant_status="closed", used_days=90)
    q = run(order, Reason.SERVICE_ISSUE, SubReason.MERCHANT_UNREACHABLE)
    assert q.outcome is Outcome.REVIEW
    assert q.priority is Priority.HIGH
    assert q.review_due == date(2026, 11, 25)  # 1 working day
    assert q.legal_refs[0] == "cpl_44"
    assert "precheck.service.merchant_status_on_record" in q.explanation
    assert q.amount_fen == 7534  # 10000 × 275 / 365 = 7534.2


def test_merchant_unreachable_claim_without_record_is_still_priority() -> None:
    q = run(make_order(used_days=10), Reason.SERVICE_ISSUE, SubReason.MERCHANT_UNREACHABLE)
    assert q.priority is Priority.HIGH
    assert "precheck.service.merchant_status_on_record" not in q.explanation


def test_service_issue_needs_a_sub_reason() -> None:
    with pytest.raises(ValueError, match="needs a sub-reason"):
        run(make_order(), Reason.SERVICE_ISSUE)


def test_sub_reason_must_belong_to_the_reason() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        run(make_order(), Reason.SEVEN_DAY, SubReason.DUPLICATE)


# -- 误购/重复购买 ------------------------------------------------------------------------------


def test_mistaken_unused_is_full_with_a_fast_review() -> None:
    q = run(make_order(), Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN)
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 10000
    assert q.priority is Priority.FAST
    assert q.review_due == date(2026, 11, 25)


def test_mistaken_partly_used_is_pro_rata_for_review() -> None:
    q = run(make_order(used_days=73), Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN)
    assert q.outcome is Outcome.REVIEW
    assert q.priority is Priority.NORMAL
    assert q.amount_fen == 8000  # 10000 × 292 / 365
    assert q.explanation == ("precheck.mistaken.partly_used",)


def _pair(minutes_apart: int) -> tuple[Order, Order]:
    first = make_order(order_id="A1", paid_at=at("2026-11-20 10:00"))
    second = make_order(
        order_id="A2", paid_at=at("2026-11-20 10:00") + timedelta(minutes=minutes_apart)
    )
    return first, second


def test_verified_duplicate_purchase_is_auto_approved() -> None:
    first, second = _pair(3)
    q = run(
        second,
        Reason.MISTAKEN_PURCHASE,
        SubReason.DUPLICATE,
        history=History(orders=(first, second)),
    )
    assert q.outcome is Outcome.AUTO_APPROVE
    assert q.amount_fen == 10000
    assert q.explanation_params["original_order_id"] == "A1"


def test_duplicate_outside_the_window_is_not_verified() -> None:
    first, second = _pair(25 * 60)
    q = run(
        second,
        Reason.MISTAKEN_PURCHASE,
        SubReason.DUPLICATE,
        history=History(orders=(first, second)),
    )
    assert q.outcome is Outcome.REVIEW
    assert q.explanation[0] == "precheck.duplicate.not_verified"


def test_duplicate_of_another_customer_or_product_is_not_verified() -> None:
    first, second = _pair(3)
    other_customer = first.model_copy(update={"phone": "+8613900139000"})
    other_product = first.model_copy(update={"product_name": "爱奇艺黄金会员年卡"})
    for original in (other_customer, other_product):
        q = run(
            second,
            Reason.MISTAKEN_PURCHASE,
            SubReason.DUPLICATE,
            history=History(orders=(original,)),
        )
        assert q.outcome is Outcome.REVIEW


def test_duplicate_whose_twin_is_already_being_refunded_is_not_verified() -> None:
    first, second = _pair(3)
    history = History(orders=(first, second), tickets=(ticket("A1", TicketStatus.APPROVED),))
    q = run(second, Reason.MISTAKEN_PURCHASE, SubReason.DUPLICATE, history=history)
    assert q.outcome is Outcome.REVIEW


def test_used_duplicate_is_pro_rata_for_review() -> None:
    first, second = _pair(3)
    second = second.model_copy(update={"used_days": 73})
    q = run(second, Reason.MISTAKEN_PURCHASE, SubReason.DUPLICATE, history=History(orders=(first,)))
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 8000


# -- 其他, and rules for every reason --------------------------------------------------------


def test_other_goes_straight_to_an_agent() -> None:
    q = run(make_order(), Reason.OTHER)
    assert q.outcome is Outcome.AGENT
    assert q.review_due == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("reason", "sub"),
    [
        (Reason.SEVEN_DAY, None),
        (Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING),
        (Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN),
        (Reason.OTHER, None),
    ],
)
def test_an_order_with_an_open_ticket_is_refused(reason: Reason, sub: SubReason | None) -> None:
    order = make_order()
    history = History(tickets=(ticket(order.order_id, TicketStatus.NEEDS_INFO),))
    q = run(order, reason, sub, history=history)
    assert q.outcome is Outcome.REFUSED
    assert q.explanation == ("precheck.refused.open_ticket",)
    assert q.explanation_params["ticket_no"] == "T20261001-0001"


def test_a_closed_ticket_does_not_block_a_new_one() -> None:
    order = make_order()
    history = History(tickets=(ticket(order.order_id, TicketStatus.WITHDRAWN),))
    assert run(order, Reason.SEVEN_DAY, history=history).outcome is Outcome.AUTO_APPROVE


def test_earlier_refunds_come_off_the_pro_rata_of_the_whole_cash() -> None:
    order = make_order(used_days=30)  # 10000 × 335 / 365 = 9178 for the unused part
    q = run(
        order, Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING, history=History(refunded_fen=5000)
    )
    assert q.cap_fen == 5000
    assert q.amount_fen == 4178  # not min(9178, 5000): those 5000 paid for unused time already
    assert q.breakdown[-1].key == "breakdown.already_refunded"
    assert sum(line.amount_fen for line in q.breakdown) == q.amount_fen


def test_fully_refunded_order_has_nothing_left() -> None:
    q = run(make_order(), Reason.SEVEN_DAY, history=History(refunded_fen=10000))
    assert q.outcome is Outcome.REFUSED
    assert q.explanation == ("precheck.refused.nothing_left",)


def test_fully_used_service_refunds_nothing_and_offers_an_agent() -> None:
    q = run(make_order(used_days=365), Reason.SERVICE_ISSUE, SubReason.SERVICE_INTERRUPTED)
    assert q.outcome is Outcome.REFUSED
    assert q.explanation[-1] == "precheck.refused.zero_amount"
    assert q.offers == ("agent",)


# -- coupons -----------------------------------------------------------------------------------


def test_refundable_coupon_returns_as_coupon_on_a_full_refund() -> None:
    order = make_order(
        list_price_fen=12000, cash_paid_fen=10000, coupon_fen=2000, coupon_refundable=True
    )
    q = run(order, Reason.SEVEN_DAY)
    assert q.amount_fen == 10000  # cash only: a coupon is never paid out as cash
    assert q.coupon_returned_fen == 2000
    assert q.breakdown[-1].key == "breakdown.coupon_returned"
    assert q.breakdown[-1].amount_fen == 0


def test_refundable_coupon_is_kept_on_a_partial_refund() -> None:
    order = make_order(
        list_price_fen=12000,
        cash_paid_fen=10000,
        coupon_fen=2000,
        coupon_refundable=True,
        used_days=30,
    )
    q = run(order, Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING)
    assert q.coupon_returned_fen == 0
    assert q.breakdown[-1].key == "breakdown.coupon_kept_partial"


def test_non_refundable_coupon_is_not_returned_and_the_breakdown_says_so() -> None:
    order = make_order(
        list_price_fen=12000, cash_paid_fen=10000, coupon_fen=2000, coupon_refundable=False
    )
    q = run(order, Reason.SEVEN_DAY)
    assert q.amount_fen == 10000
    assert q.coupon_returned_fen == 0
    assert q.breakdown[-1].key == "breakdown.coupon_not_refundable"
    assert q.breakdown[-1].params == {"coupon_fen": 2000}


# -- payout window and deadlines -------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "window"), [("wechat", (1, 3)), ("alipay", (1, 3)), ("bank_card", (3, 5))]
)
def test_payout_window_follows_the_payment_channel(channel: str, window: tuple[int, int]) -> None:
    assert run(make_order(payment_channel=channel), Reason.SEVEN_DAY).payout_window == window


def test_review_deadline_after_national_day_counts_the_make_up_saturday() -> None:
    q = run(
        make_order(paid_at=at("2026-09-28 10:00"), list_price_fen=50000, cash_paid_fen=50000),
        Reason.SEVEN_DAY,
        now=at("2026-09-30 16:00"),
    )
    # 10-01..10-07 are holidays; 10-08 Thu, 10-09 Fri, 10-10 Sat (调休 working day)
    assert q.review_due == date(2026, 10, 10)


def test_ticket_submitted_2026_12_30_gets_a_2027_deadline_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # as if the installed chinese-calendar had no 2027 (whatever release is installed)
    official = OnlyYears(ChineseCalendarPackage(), frozenset({2026}))
    cal = WorkingCalendar(CONFIG.calendar.fallback_holidays, official=official)
    with caplog.at_level(logging.WARNING, logger="bot.calendar"):
        q = assess(
            make_order(paid_at=at("2026-12-28 10:00"), list_price_fen=50000, cash_paid_fen=50000),
            Reason.SEVEN_DAY,
            None,
            at("2026-12-30 09:00"),
            CONFIG.policy,
            cal,
            History(),
        )
    assert q.review_due == date(2027, 1, 5)  # 12-31, (01-01 holiday, weekend), 01-04, 01-05
    assert "no data for 2027" in caplog.text


def test_no_fast_refund_for_an_order_already_partly_refunded() -> None:
    q = run(make_order(), Reason.SEVEN_DAY, history=History(refunded_fen=1000))
    assert q.outcome is Outcome.REVIEW
    assert q.amount_fen == 9000


def test_the_coupon_comes_back_only_with_the_full_amount() -> None:
    order = make_order(
        list_price_fen=12000, cash_paid_fen=10000, coupon_fen=2000, coupon_refundable=True
    )
    q = run(order, Reason.SEVEN_DAY)
    assert coupon_returned(q, 10000) == 2000
    assert coupon_returned(q, 9999) == 0
