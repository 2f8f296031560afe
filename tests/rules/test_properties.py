"""Properties of the rules that must hold for any order (hypothesis)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.calendar import WorkingCalendar
from bot.config import Policy
from bot.domain import SUB_REASONS, Category, History, Order, Outcome, Reason, SubReason
from bot.rules import assess
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays)
NOW = at("2026-11-24 10:00")

reasons = st.sampled_from(
    [(reason, None) for reason in (Reason.SEVEN_DAY, Reason.OTHER)]
    + [(reason, sub) for reason, subs in SUB_REASONS.items() for sub in subs]
)


@st.composite
def orders(draw: st.DrawFn, used: int | None = None) -> Order:
    cash = draw(st.integers(0, 5_000_000))
    coupon = draw(st.integers(0, 100_000))
    total_days = draw(st.integers(1, 800))
    paid_at = NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
    used_days = draw(st.integers(0, total_days)) if used is None else min(used, total_days)
    return make_order(
        category=draw(st.sampled_from(list(Category))),
        list_price_fen=cash + coupon,
        cash_paid_fen=cash,
        coupon_fen=coupon,
        coupon_refundable=draw(st.booleans()),
        paid_at=paid_at,
        service_end=paid_at + timedelta(days=total_days),
        activated_at=draw(st.sampled_from([None, paid_at])),
        activation_exclusion_confirmed=draw(st.booleans()),
        used_days=used_days,
        payment_channel=draw(st.sampled_from(["wechat", "alipay", "bank_card"])),
        seven_day_supported=draw(st.booleans()),
        merchant_status=draw(st.sampled_from(["active", "unreachable", "closed"])),
    )


units = st.sampled_from(["day", "month"])


def _policy(unit: str) -> Policy:
    return CONFIG.policy.model_copy(update={"pro_rata_unit": unit})


@settings(max_examples=300, deadline=None)
@given(orders(), reasons, st.data(), units)
def test_refund_is_whole_fen_between_zero_and_the_cap(
    order: Order, reason: tuple[Reason, SubReason | None], data: st.DataObject, unit: str
) -> None:
    refunded = data.draw(st.integers(0, order.cash_paid_fen))
    q = assess(order, reason[0], reason[1], NOW, _policy(unit), CAL, History(refunded_fen=refunded))
    assert isinstance(q.amount_fen, int)
    assert 0 <= q.amount_fen <= order.cash_paid_fen - refunded
    assert q.cap_fen == order.cash_paid_fen - refunded
    if q.outcome is not Outcome.REFUSED:
        assert q.amount_fen > 0
        assert sum(line.amount_fen for line in q.breakdown) == q.amount_fen
    else:
        assert q.amount_fen == 0


@settings(max_examples=300, deadline=None)
@given(orders(used=0), reasons, st.integers(0, 800), st.integers(1, 800), units)
def test_refund_never_rises_as_usage_rises(
    order: Order, reason: tuple[Reason, SubReason | None], a: int, b: int, unit: str
) -> None:
    total = order.total_days
    less, more = sorted((min(a, total), min(a + b, total)))
    q_less = assess(
        order.model_copy(update={"used_days": less}), *reason, NOW, _policy(unit), CAL, History()
    )
    q_more = assess(
        order.model_copy(update={"used_days": more}), *reason, NOW, _policy(unit), CAL, History()
    )
    assert q_more.amount_fen <= q_less.amount_fen


@settings(max_examples=200, deadline=None)
@given(
    orders(), st.sampled_from(sorted(CONFIG.policy.seven_day.excluded_categories)), st.booleans()
)
def test_excluded_categories_never_get_a_seven_day_refund(
    order: Order, category: Category, dispute: bool
) -> None:
    # excluded by nature: only with the customer's confirmation at purchase
    order = order.model_copy(update={"category": category, "activation_exclusion_confirmed": True})
    sub = SubReason.ACTIVATION_DISPUTE if dispute else None
    q = assess(order, Reason.SEVEN_DAY, sub, NOW, CONFIG.policy, CAL, History())
    assert q.outcome is Outcome.REFUSED
    assert q.amount_fen == 0
