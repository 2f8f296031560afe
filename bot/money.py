"""Money is integer fen (分) everywhere; these are the only conversions to and from yuan text."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

_YUAN = re.compile(r"^\s*[¥￥]?\s*(\d{1,12})(?:\.(\d{1,2}))?\s*(?:元)?\s*$")


def parse_yuan(text: str) -> int:
    """Parse a yuan amount with at most two decimals ("91.67", "¥100", "100元") into fen."""
    match = _YUAN.match(text)
    if match is None:
        raise ValueError(f"not an amount in yuan with at most 2 decimals: {text!r}")
    whole, frac = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(frac)


def format_fen(fen: int) -> str:
    """Show fen as yuan: 9167 -> '¥91.67', -833 -> '-¥8.33'."""
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{frac:02d}"


def prorate(amount_fen: int, numerator: int, denominator: int) -> int:
    """amount × numerator / denominator, rounded half up to the fen, in exact arithmetic."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    exact = Decimal(amount_fen) * Decimal(numerator) / Decimal(denominator)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
