"""The shared refund rules: eligibility, amounts, deadlines. Pure functions, no IO, no clock."""

from bot.rules._amounts import (
    Usage,
    add_months,
    coupon_back,
    month_boundary,
    refund_amount,
    usage,
)
from bot.rules._assess import (
    RULES_VERSION,
    assess,
    can_appeal,
    check_approved_amount,
    check_compensation,
    check_requested_amount,
    compensation_cap,
    coupon_returned,
    is_overdue,
    payout_due,
    policy_fingerprint,
    review_due,
    seven_day_last_day,
)

__all__ = [
    "RULES_VERSION",
    "Usage",
    "add_months",
    "assess",
    "can_appeal",
    "check_approved_amount",
    "check_compensation",
    "check_requested_amount",
    "compensation_cap",
    "coupon_back",
    "coupon_returned",
    "is_overdue",
    "month_boundary",
    "payout_due",
    "policy_fingerprint",
    "refund_amount",
    "review_due",
    "seven_day_last_day",
    "usage",
]
