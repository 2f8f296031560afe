"""Wall-clock time in the business's timezone: pure conversions, no clock (rules use these)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def to_local(moment: datetime, tz: ZoneInfo = SHANGHAI) -> datetime:
    """The moment on a wall clock in `tz` (business rules use Asia/Shanghai)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    return moment.astimezone(tz)
