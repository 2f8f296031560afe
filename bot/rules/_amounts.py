"""Pro-rata amounts and the itemised breakdown. Pure; integer fen only."""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from bot.domain import BreakdownLine, Order
from bot.localtime import to_local
from bot.money import prorate

Unit = Literal["day", "month"]


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, clamped to the month's last day (1-31 + 1 -> 2-28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def month_boundary(start: date, months: int) -> date:
    """The first day after `months` months counted from `start` (Civil Code Art. 202): a month
    ends on the corresponding day, or on the month's last day when it has none — so one month
    from 01-31 runs through 02-28 and the next period starts 03-01, not 02-28."""
    end = add_months(start, months)
    if end.day < start.day:  # no corresponding day: the period took the whole short month
        return end + timedelta(days=1)
    return end


def _months_covering(start: date, end: date) -> int:
    """The number of months from `start` needed to reach `end`: a started month counts whole."""
    if end <= start:
        return 0
    months = (end.year - start.year) * 12 + end.month - start.month
    months = max(months - 1, 0)
    while month_boundary(start, months) < end:
        months += 1
    return months


@dataclass(frozen=True, slots=True)
class Usage:
    """How much of the service period is used, in the configured unit."""

    unit: Unit
    used: int
    total: int

    @property
    def remaining(self) -> int:
        return self.total - self.used


def usage(order: Order, unit: Unit) -> Usage:
    """The order's usage in days, or in months where a started month counts as used."""
    if unit == "day":
        total = order.total_days
        return Usage("day", min(order.used_days, total), total)
    start = to_local(order.service_start).date()
    end = to_local(order.service_end).date()
    total = _months_covering(start, end)
    used = min(_months_covering(start, start + timedelta(days=order.used_days)), total)
    return Usage("month", used, total)


def coupon_back(order: Order, refunded_fen: int, refund_fen: int) -> int:
    """The coupon given back (as a coupon, never cash) with a refund of `refund_fen` after
    `refunded_fen` earlier: a refundable coupon, once the order's whole cash is refunded."""
    whole_cash = refund_fen > 0 and refunded_fen + refund_fen == order.cash_paid_fen
    return order.coupon_fen if order.coupon_refundable and whole_cash else 0


@dataclass(frozen=True, slots=True)
class Amount:
    amount_fen: int
    lines: tuple[BreakdownLine, ...]
    coupon_returned_fen: int


def refund_amount(order: Order, refunded_fen: int, use: Usage | None) -> Amount:
    """Cash refundable now: full (use=None) or pro-rata of the unused part, less what earlier
    refunds of the order already paid: max(0, min(computed − refunded, cap)). Earlier refunds
    come off the pro-rata of the whole cash, so the same unused time is never paid twice.

    The breakdown lines add up to the amount; coupon lines carry 0 cash, because a coupon is
    never paid out as cash. A refundable coupon comes back once the order's whole cash is
    refunded, in this ticket or together with earlier ones.
    """
    paid = order.cash_paid_fen
    cap = max(paid - refunded_fen, 0)
    lines = [BreakdownLine(key="breakdown.cash_paid", amount_fen=paid)]
    computed = paid
    if use is not None and use.used > 0:
        computed = prorate(paid, use.remaining, use.total) if use.total else 0
        lines.append(
            BreakdownLine(
                key=f"breakdown.used_{use.unit}s",
                amount_fen=computed - paid,
                params={"used": use.used, "total": use.total},
            )
        )
    amount = max(0, min(computed - refunded_fen, cap))
    if refunded_fen:
        lines.append(
            BreakdownLine(
                key="breakdown.already_refunded",
                amount_fen=amount - computed,
                params={"refunded_fen": refunded_fen},
            )
        )
    coupon_returned = coupon_back(order, refunded_fen, amount)
    if order.coupon_fen:
        if coupon_returned:
            key = "breakdown.coupon_returned"
        elif order.coupon_refundable:
            key = "breakdown.coupon_kept_partial"
        else:
            key = "breakdown.coupon_not_refundable"
        lines.append(BreakdownLine(key=key, amount_fen=0, params={"coupon_fen": order.coupon_fen}))
    return Amount(amount, tuple(lines), coupon_returned)
