"""The shared refund rules: eligibility, amounts, deadlines. Pure functions, no IO, no clock."""

from bot.rules._amounts import Usage, add_months, refund_amount, usage
from bot.rules._assess import (
    assess,
    can_appeal,
    check_approved_amount,
    check_requested_amount,
    coupon_returned,
    is_overdue,
    payout_due,
    review_due,
    seven_day_last_day,
)

__all__ = [
    "Usage",
    "add_months",
    "assess",
    "can_appeal",
    "check_approved_amount",
    "check_requested_amount",
    "coupon_returned",
    "is_overdue",
    "payout_due",
    "refund_amount",
    "review_due",
    "seven_day_last_day",
    "usage",
]
