"""Builders for domain values used across the tests (plain functions, explicit defaults)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.clock import SHANGHAI
from bot.config import Config, load_config
from bot.domain import Order

REPO_CONFIG = "config.yaml"


def at(text: str) -> datetime:
    """A Shanghai wall-clock time: at('2026-11-24 10:00')."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def make_order(**overrides: Any) -> Order:
    """A ¥100 video membership bought 2026-11-20 10:00, one year, unused, WeChat Pay."""
    paid_at = overrides.pop("paid_at", at("2026-11-20 10:00"))
    start = overrides.pop("service_start", paid_at)
    fields: dict[str, Any] = {
        "order_id": "XN20261120001",
        "phone": "+8613800138000",
        "customer_name": "张三",
        "product_name": "腾讯视频VIP年卡",
        "category": "video_membership",
        "list_price_fen": 10000,
        "cash_paid_fen": 10000,
        "coupon_fen": 0,
        "coupon_refundable": False,
        "paid_at": paid_at,
        "service_start": start,
        "service_end": start + timedelta(days=365),
        "activated_at": None,
        "activation_exclusion_confirmed": False,
        "used_days": 0,
        "payment_channel": "wechat",
        "seven_day_supported": True,
        "merchant_status": "active",
    }
    fields.update(overrides)
    return Order.model_validate(fields)


def repo_config() -> Config:
    """The shipped config.yaml, validated."""
    from pathlib import Path

    return load_config(Path(__file__).resolve().parent.parent / REPO_CONFIG)
