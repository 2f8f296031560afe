"""Money is integer fen; yuan text converts exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import format_fen, parse_yuan, prorate


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("91.67", 9167),
        ("100", 10000),
        ("¥100.5", 10050),
        ("0.29", 29),
        ("19.99", 1999),
        ("200元", 20000),
    ],
)
def test_parse_yuan(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.234", "-1", "abc", "", "1e3", "1,000"])
def test_parse_yuan_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_yuan(text)


def test_format_fen() -> None:
    assert format_fen(9167) == "¥91.67"
    assert format_fen(-833) == "-¥8.33"
    assert format_fen(5) == "¥0.05"
    assert format_fen(123456789) == "¥1,234,567.89"


@given(st.integers(0, 10**12))
def test_format_and_parse_round_trip(fen: int) -> None:
    assert parse_yuan(format_fen(fen).replace(",", "")) == fen


def test_prorate_rounds_half_up() -> None:
    assert prorate(10000, 11, 12) == 9167  # 9166.67
    assert prorate(10000, 335, 365) == 9178  # 9178.08
    assert prorate(1, 1, 2) == 1  # 0.5 rounds up
    assert prorate(3, 1, 2) == 2  # 1.5 rounds up, not to even
