"""Orders import: parsing (pure), the all-or-nothing import, the CLI, and phone normalisation."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.clock import SHANGHAI
from bot.domain import Category, MerchantStatus, Order, PaymentChannel
from bot.orders_import import (
    FIELDS,
    REQUIRED_FIELDS,
    ImportFileError,
    ImportSummary,
    OrderRow,
    ParseResult,
    RowError,
    format_errors,
    import_orders,
    parse_csv_text,
    parse_json_text,
    parse_orders,
)
from bot.phone import normalise_phone
from bot.store import StoreError, UnitOfWork
from bot.store.sqlite import SqliteStore

DATA = Path(__file__).resolve().parents[1] / "bot" / "data"


# --- helpers ----------------------------------------------------------------------------------


def good_row(**changes: str) -> dict[str, str]:
    """One valid CSV row (all text, as a shop export has it), with `changes` applied."""
    row = {
        "order_id": "T0001",
        "phone": "13800138000",
        "customer_name": "张三",
        "product_name": "星河视频 VIP 会员年卡",
        "category": "video_membership",
        "list_price": "198.00",
        "cash_paid": "188.00",
        "coupon_amount": "10.00",
        "coupon_refundable": "否",
        "paid_at": "2026-11-22 10:15",
        "service_start": "2026-11-22",
        "service_end": "2027-11-22",
        "activated_at": "",
        "activation_exclusion_confirmed": "否",
        "used_days": "0",
        "payment_channel": "wechat",
        "seven_day_supported": "是",
        "merchant_status": "active",
    }
    row.update(changes)
    return row


def csv_text(rows: list[dict[str, str]], columns: tuple[str, ...] | list[str] = FIELDS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def parse_one(**changes: str) -> ParseResult:
    return parse_csv_text(csv_text([good_row(**changes)]))


def only_order(result: ParseResult) -> Order:
    assert result.errors == ()
    assert len(result.orders) == 1
    return result.orders[0]


def json_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(good_row())
    row.update(changes)
    return row


def messages(result: ParseResult) -> list[str]:
    return [str(error) for error in result.errors]


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0.29", 29),
        ("19.99", 1999),
        ("19.9", 1990),
        ("188", 18800),
        ("188.00", 18800),
        ("0.01", 1),
        (" 100.50 ", 10050),
        ("¥100", 10000),
        ("100元", 10000),
    ],
)
def test_csv_amounts_convert_exactly_to_fen(text: str, fen: int) -> None:
    order = only_order(parse_one(cash_paid=text, coupon_amount="0", list_price="1000"))
    assert order.cash_paid_fen == fen


@pytest.mark.parametrize(
    ("literal", "fen"),
    [
        ("19.99", 1999),
        ("0.29", 29),  # 0.29 * 100 == 28.999999999999996 in floats: the classic lost fen
        ("1.1", 110),
        ("188", 18800),
        ("99.5", 9950),
        ("1e2", 10000),
        ('"19.99"', 1999),
    ],
)
def test_json_numbers_convert_through_their_decimal_text(literal: str, fen: int) -> None:
    row = json_row(list_price=1000, coupon_amount=0)
    text = json.dumps([row]).replace('"cash_paid": "188.00"', f'"cash_paid": {literal}')
    assert literal in text
    order = only_order(parse_json_text(text))
    assert order.cash_paid_fen == fen


@pytest.mark.parametrize("text", ["19.999", "0.001", "100.000", "¥1.234"])
def test_three_decimals_are_refused(text: str) -> None:
    result = parse_one(cash_paid=text)
    assert result.orders == ()
    assert messages(result) == [
        f"line 2 (order T0001), cash_paid: has more than 2 decimals (got {text}); "
        "amounts are exact to the fen (0.01)"
    ]


def test_json_number_with_three_decimals_is_refused() -> None:
    text = json.dumps([json_row()]).replace('"list_price": "198.00"', '"list_price": 198.005')
    result = parse_json_text(text)
    assert result.orders == ()
    assert [(e.where, e.field) for e in result.errors] == [("item [0]", "list_price")]
    assert "more than 2 decimals" in result.errors[0].reason


@pytest.mark.parametrize("field", ["list_price", "cash_paid", "coupon_amount"])
def test_negative_amounts_are_refused(field: str) -> None:
    result = parse_one(**{field: "-1.00"})
    assert [(e.where, e.field, e.reason) for e in result.errors] == [
        ("line 2", field, "must not be negative (got -1.00)")
    ]


def test_empty_coupon_and_used_days_default_to_zero() -> None:
    order = only_order(parse_one(coupon_amount="", cash_paid="198", used_days=""))
    assert (order.coupon_fen, order.used_days) == (0, 0)


# --- times ------------------------------------------------------------------------------------


def test_naive_times_are_shanghai_time() -> None:
    order = only_order(parse_one(paid_at="2026-11-20 14:30", activated_at="2026-11-20T14:45:10"))
    assert order.paid_at == datetime(2026, 11, 20, 14, 30, tzinfo=SHANGHAI)
    assert order.paid_at.utcoffset() == timedelta(hours=8)
    assert order.activated_at == datetime(2026, 11, 20, 14, 45, 10, tzinfo=SHANGHAI)


def test_times_with_an_offset_keep_their_instant() -> None:
    order = only_order(parse_one(paid_at="2026-11-20T06:30:00Z"))
    assert order.paid_at == datetime(2026, 11, 20, 14, 30, tzinfo=SHANGHAI)
    assert order.paid_at.utcoffset() == timedelta(hours=8)  # shown in Shanghai time


def test_date_only_service_dates_are_midnight_shanghai() -> None:
    order = only_order(parse_one(service_start="2026-11-22", service_end="2027-11-22"))
    assert order.service_start == datetime(2026, 11, 22, 0, 0, tzinfo=SHANGHAI)
    assert order.service_end == datetime(2027, 11, 22, 0, 0, tzinfo=SHANGHAI)
    assert order.total_days == 365


@pytest.mark.parametrize("field", ["paid_at", "activated_at"])
def test_date_only_moments_are_refused(field: str) -> None:
    result = parse_one(**{field: "2026-11-22"})
    assert [(e.field, e.reason) for e in result.errors] == [
        (field, "needs a time of day as well, like 2026-11-22 14:30 (got '2026-11-22')")
    ]


def test_empty_activated_at_means_not_activated() -> None:
    assert not only_order(parse_one(activated_at="")).is_activated
    assert only_order(parse_one(activated_at="2026-11-22 11:00")).is_activated


# --- booleans and choices ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("是", True),
        (" 是 ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
        ("否", False),
    ],
)
def test_boolean_spellings(text: str, value: bool) -> None:
    order = only_order(parse_one(activation_exclusion_confirmed=text, seven_day_supported=text))
    assert order.activation_exclusion_confirmed is value
    assert order.seven_day_supported is value


def test_json_booleans_and_zero_one() -> None:
    rows = [
        json_row(order_id="A", coupon_refundable=True, seven_day_supported=False),
        json_row(order_id="B", coupon_refundable=1, seven_day_supported=0),
    ]
    result = parse_json_text(json.dumps(rows))
    assert result.errors == ()
    assert [(o.coupon_refundable, o.seven_day_supported) for o in result.orders] == [
        (True, False),
        (True, False),
    ]


def test_enum_values_are_case_insensitive() -> None:
    order = only_order(
        parse_one(category="Course", payment_channel="ALIPAY", merchant_status=" Closed ")
    )
    assert order.category is Category.COURSE
    assert order.payment_channel is PaymentChannel.ALIPAY
    assert order.merchant_status is MerchantStatus.CLOSED


def test_optional_columns_may_be_left_out() -> None:
    columns = list(REQUIRED_FIELDS)
    row = {name: good_row(cash_paid="198.00")[name] for name in columns}
    order = only_order(parse_csv_text(csv_text([row], columns)))
    assert order.coupon_fen == 0
    assert order.coupon_refundable is False
    assert order.activated_at is None
    assert order.activation_exclusion_confirmed is False
    assert order.used_days == 0
    assert order.merchant_status is MerchantStatus.ACTIVE


# --- bad rows: each field, its line and a reason ----------------------------------------------

BAD_VALUES: list[tuple[str, str, str]] = [
    ("order_id", "", "is empty (required)"),
    ("order_id", "X" * 65, "is 65 characters long; at most 64 are allowed"),
    ("phone", "", "is empty (required)"),
    ("phone", "1380013800", "neither a Chinese mobile number"),
    ("phone", "138-0013-800O", "may contain only digits"),
    ("customer_name", " ", "is empty (required)"),
    ("product_name", "", "is empty (required)"),
    ("category", "music", "must be one of video_membership, course, gym, game_points"),
    ("list_price", "abc", "must be an amount in yuan like 199.00 or 0.29 (got 'abc')"),
    ("list_price", "1,980.00", "must be an amount in yuan"),
    ("cash_paid", "", "is empty (required)"),
    ("cash_paid", "12.345", "has more than 2 decimals"),
    ("coupon_amount", "-5", "must not be negative (got -5)"),
    ("coupon_refundable", "maybe", "must be true/false, yes/no, 1/0 or 是/否 (got 'maybe')"),
    ("paid_at", "", "is empty (required)"),
    ("paid_at", "2026/11/22 10:15", "must be a date and time like 2026-11-20 14:30"),
    ("paid_at", "22.11.2026", "must be a date and time like"),
    ("service_start", "tomorrow", "must be a date and time like"),
    ("service_end", "2027-13-01", "must be a date and time like"),
    ("activated_at", "yes", "must be a date and time like"),
    ("activation_exclusion_confirmed", "2", "must be true/false"),
    ("used_days", "3.5", "must be a whole number of days like 30 (got '3.5')"),
    ("used_days", "-1", "must not be negative (got -1)"),
    ("used_days", "三十", "must be a whole number of days"),
    ("payment_channel", "cash", "must be one of wechat, alipay, bank_card (got 'cash')"),
    ("payment_channel", "", "is empty (required)"),
    ("seven_day_supported", "", "is empty (required)"),
    ("seven_day_supported", "支持", "must be true/false"),
    ("merchant_status", "gone", "must be one of active, unreachable, closed (got 'gone')"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_a_bad_value_is_reported_with_its_line_and_field(
    field: str, value: str, reason: str
) -> None:
    rows = [good_row(order_id="OK1"), good_row(**{"order_id": "BAD", field: value})]
    rows.append(good_row(order_id="OK2"))
    result = parse_csv_text(csv_text(rows))
    assert [o.order_id for o in result.orders] == ["OK1", "OK2"]
    assert not result.ok
    assert len(result.errors) == 1, messages(result)
    error = result.errors[0]
    assert (error.where, error.field) == ("line 3", field)
    assert reason in error.reason
    assert str(error).startswith("line 3")
    assert f", {field}: " in str(error)


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_a_bad_value_in_json_is_reported_with_its_index(
    field: str, value: str, reason: str
) -> None:
    rows = [json_row(order_id="OK1"), json_row(**{"order_id": "BAD", field: value})]
    result = parse_json_text(json.dumps(rows, ensure_ascii=False))
    assert len(result.errors) == 1, messages(result)
    assert (result.errors[0].where, result.errors[0].field) == ("item [1]", field)
    assert reason in result.errors[0].reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("list_price", True, "found true/false"),
        ("cash_paid", [1], "found a list"),
        ("customer_name", 42, "must be text, found a number"),
        ("used_days", 2.5, "must be a whole number of days like 30 (got '2.5')"),
        ("used_days", True, "found true/false"),
        ("seven_day_supported", 2, "must be true/false"),
        ("phone", 13800138000.0, "must be text"),
    ],
)
def test_wrong_json_types_are_reported(field: str, value: object, reason: str) -> None:
    result = parse_json_text(json.dumps([json_row(**{field: value})]))
    assert [(e.where, e.field) for e in result.errors] == [("item [0]", field)]
    assert reason in result.errors[0].reason


def test_json_numbers_for_ids_and_phones_are_read_as_their_digits() -> None:
    order = only_order(
        parse_json_text(json.dumps([json_row(order_id=20261122001, phone=13800138000)]))
    )
    assert (order.order_id, order.phone) == ("20261122001", "+8613800138000")


def test_every_problem_of_a_row_is_reported_not_just_the_first() -> None:
    result = parse_one(phone="x", cash_paid="-1", category="music")
    assert [e.field for e in result.errors] == ["phone", "category", "cash_paid"]


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        (
            {"service_start": "2027-11-22", "service_end": "2026-11-22"},
            "service_end",
            "service_end must be after service_start (2027-11-22 00:00 → 2026-11-22 00:00)",
        ),
        (
            {"list_price": "100", "cash_paid": "95", "coupon_amount": "10"},
            "cash_paid",
            "cash_paid + coupon_amount must not exceed list_price (¥95.00 + ¥10.00 > ¥100.00)",
        ),
        (
            {"used_days": "400"},
            "used_days",
            "used_days must not exceed the service period (400 days used, the service period "
            "has 365)",
        ),
    ],
)
def test_order_consistency_errors_are_row_errors(
    changes: dict[str, str], field: str, fragment: str
) -> None:
    result = parse_one(**changes)
    assert result.orders == ()
    assert [(e.where, e.field) for e in result.errors] == [("line 2", field)]
    assert result.errors[0].reason == fragment


PRICE_TOO_HIGH = "cash_paid + coupon_amount must not exceed list_price (¥95.00 + ¥10.00 > ¥100.00)"
ENDS_BEFORE_START = "service_end must be after service_start (2027-11-22 00:00 → 2026-11-22 00:00)"


def test_consistency_and_field_problems_are_reported_in_one_run() -> None:
    rows = [
        good_row(order_id="A", phone="x", list_price="100", cash_paid="95", coupon_amount="10"),
        good_row(order_id="B", used_days="x"),
        good_row(
            order_id="C", category="music", service_start="2027-11-22", service_end="2026-11-22"
        ),
        good_row(order_id="D", list_price="100", cash_paid="95", coupon_amount="10"),
    ]
    result = parse_csv_text(csv_text(rows))
    assert result.orders == ()
    assert [(e.where, e.field) for e in result.errors] == [
        ("line 2", "phone"),
        ("line 2", "cash_paid"),
        ("line 3", "used_days"),
        ("line 4", "category"),
        ("line 4", "service_end"),
        ("line 5", "cash_paid"),
    ]
    reasons = {(e.where, e.field): e.reason for e in result.errors}
    assert reasons["line 2", "cash_paid"] == PRICE_TOO_HIGH
    assert reasons["line 4", "service_end"] == ENDS_BEFORE_START


def test_two_consistency_problems_of_one_row_are_both_reported() -> None:
    result = parse_one(
        list_price="100",
        cash_paid="95",
        coupon_amount="10",
        service_start="2027-11-22",
        service_end="2026-11-22",
    )
    assert [(e.field, e.reason) for e in result.errors] == [
        ("cash_paid", PRICE_TOO_HIGH),
        ("service_end", ENDS_BEFORE_START),
    ]


@pytest.mark.parametrize(
    ("changes", "bad_field"),
    [
        ({"list_price": "abc", "cash_paid": "500"}, "list_price"),
        ({"coupon_amount": "x", "cash_paid": "500"}, "coupon_amount"),
        ({"service_start": "tomorrow", "service_end": "2020-01-01"}, "service_start"),
        ({"service_start": "tomorrow", "used_days": "9999"}, "service_start"),
        ({"service_end": "2027-13-01", "used_days": "9999"}, "service_end"),
    ],
)
def test_a_consistency_rule_waits_for_the_fields_it_reads(
    changes: dict[str, str], bad_field: str
) -> None:
    """A rule reading a bad field would only guess; the bad field's own message says it all."""
    result = parse_one(**changes)
    assert [e.field for e in result.errors] == [bad_field]


def test_json_item_with_every_kind_of_problem_reports_them_all() -> None:
    item = json_row(order_id="A", remark="x", list_price=100, cash_paid=95, coupon_amount=10)
    del item["phone"]
    item["used_days"] = "x"
    result = parse_json_text(json.dumps([item]))
    assert messages(result)[0].startswith("item [0] (order A): unknown key 'remark' (allowed: ")
    assert messages(result)[1:] == [
        "item [0] (order A), phone: is missing (required)",
        f"item [0] (order A), cash_paid: {PRICE_TOO_HIGH}",
        "item [0] (order A), used_days: must be a whole number of days like 30 (got 'x')",
    ]


def test_a_numeric_order_id_is_held_to_the_same_length() -> None:
    result = parse_json_text(json.dumps([json_row(order_id=10**70)]))
    assert [(e.field, e.reason) for e in result.errors] == [
        ("order_id", "is 71 characters long; at most 64 are allowed")
    ]


_json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**64),  # 65 digits and more: too long for an id
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
    st.sampled_from(["2026-11-22", "2026-11-22 10:00", "-1", "0", "1e2", "是", "wechat"]),
    st.lists(st.integers(), max_size=2),
)


@given(changes=st.dictionaries(st.sampled_from(FIELDS), _json_values, min_size=1, max_size=2))
def test_any_json_item_is_an_order_or_row_errors_never_a_crash(changes: dict[str, Any]) -> None:
    """Whatever passes OrderRow becomes an Order: nothing gets past the row to fail later."""
    result = parse_json_text(json.dumps([json_row(**changes)]))
    assert len(result.orders) + len(result.errors) >= 1
    assert all(e.where == "item [0]" for e in result.errors)
    assert not (result.orders and result.errors)


def test_the_row_model_fills_every_field_of_an_order() -> None:
    assert set(OrderRow.model_fields) == set(Order.model_fields)
    assert set(FIELDS) >= set(REQUIRED_FIELDS)
    assert "list_price" in FIELDS and "list_price_fen" not in FIELDS  # the file speaks yuan


def test_line_numbers_are_physical_lines_of_the_file() -> None:
    good = csv_text([good_row(order_id="A", product_name="年卡\n（第二行）")])
    bad = csv_text([good_row(order_id="B", cash_paid="oops")]).split("\n", 1)[1]
    # header=1, A spans 2-3 (quoted line break), a blank line 4, B on line 5
    text = good + "\n" + bad
    result = parse_csv_text(text)
    assert [e.where for e in result.errors] == ["line 5"]
    assert messages(result)[0].startswith("line 5 (order B), cash_paid:")


def test_crlf_line_endings_count_lines_the_same() -> None:
    text = csv_text([good_row(order_id="A"), good_row(order_id="B", used_days="x")])
    result = parse_csv_text(text.replace("\n", "\r\n"))
    assert [e.where for e in result.errors] == ["line 3"]


def test_a_row_with_the_wrong_number_of_cells() -> None:
    text = csv_text([good_row(order_id="A")]) + "B,13800138000,张三\n"
    result = parse_csv_text(text)
    assert messages(result) == [
        "line 3 (order B): has 3 cells but the header has 18 columns "
        "(check for a stray or missing comma, or an unquoted comma in a value)"
    ]


def test_blank_lines_are_skipped() -> None:
    text = csv_text([good_row(order_id="A")]) + "\n,,,\n"
    assert len(parse_csv_text(text).orders) == 1


def test_errors_come_in_file_order() -> None:
    rows = [good_row(order_id=f"O{i}", used_days="x" if i % 2 else "0") for i in range(12)]
    rows.append(good_row(order_id="O1"))
    result = parse_csv_text(csv_text(rows))
    wheres = [int(e.where.split()[1]) for e in result.errors]
    assert wheres == sorted(wheres)
    assert wheres[-1] == 14


# --- columns and keys -------------------------------------------------------------------------


def test_unknown_columns_are_named() -> None:
    columns = [*FIELDS, "remark", "备注"]
    row = {**good_row(), "remark": "x", "备注": "y"}
    result = parse_csv_text(csv_text([row], columns))
    assert result.orders == ()
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith("line 1: unknown columns 'remark', '备注' (allowed: ")


@pytest.mark.parametrize("missing", ["phone", "cash_paid", "seven_day_supported"])
def test_missing_required_columns_are_named(missing: str) -> None:
    columns = [name for name in FIELDS if name != missing]
    rows = [{k: v for k, v in good_row().items() if k != missing}]
    result = parse_csv_text(csv_text(rows, columns))
    assert result.orders == ()
    assert messages(result) == [f"line 1, {missing}: column is missing (required)"]


def test_a_duplicated_or_unnamed_column_is_an_error() -> None:
    header = ",".join([*FIELDS, "phone", ""])
    result = parse_csv_text(header + "\n")
    assert messages(result) == [
        "line 1, phone: column appears more than once",
        "line 1: a column has no name (a stray comma in the header?)",
    ]


def test_header_names_tolerate_spaces_around_them() -> None:
    text = csv_text([good_row()]).replace("order_id,phone", " order_id , phone ", 1)
    assert only_order(parse_csv_text(text)).order_id == "T0001"


def test_unknown_and_missing_json_keys_are_named() -> None:
    extra = json_row(order_id="A", remark="x")
    lacking = {k: v for k, v in json_row(order_id="B").items() if k not in ("phone", "paid_at")}
    optional_left_out = {
        k: v for k, v in json_row(order_id="C", cash_paid="198").items() if k in REQUIRED_FIELDS
    }
    result = parse_json_text(json.dumps([extra, lacking, optional_left_out]))
    assert [o.order_id for o in result.orders] == ["C"]
    assert messages(result)[0].startswith("item [0] (order A): unknown key 'remark' (allowed: ")
    assert messages(result)[1:] == [
        "item [1] (order B), phone: is missing (required)",
        "item [1] (order B), paid_at: is missing (required)",
    ]


def test_json_null_counts_as_empty() -> None:
    result = parse_json_text(json.dumps([json_row(activated_at=None, phone=None)]))
    assert [(e.field, e.reason) for e in result.errors] == [("phone", "is empty (required)")]


def test_a_json_item_that_is_not_an_object() -> None:
    result = parse_json_text(json.dumps([json_row(), ["T2"], "T3"]))
    assert messages(result) == [
        "item [1]: must be an object, found a list",
        "item [2]: must be an object, found text",
    ]


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_order_id_in_one_file() -> None:
    rows = [good_row(order_id="A"), good_row(order_id="B"), good_row(order_id=" A ")]
    result = parse_csv_text(csv_text(rows))
    assert messages(result) == [
        "line 4 (order A), order_id: duplicate order id, already used on line 2"
    ]


def test_duplicate_is_reported_even_when_the_first_row_is_bad() -> None:
    rows = [good_row(order_id="A", used_days="x"), good_row(order_id="A")]
    result = parse_csv_text(csv_text(rows))
    assert [(e.where, e.field) for e in result.errors] == [
        ("line 2", "used_days"),
        ("line 3", "order_id"),
    ]


def test_duplicate_order_id_in_json() -> None:
    result = parse_json_text(json.dumps([json_row(order_id="A"), json_row(order_id="A")]))
    assert messages(result) == [
        "item [1] (order A), order_id: duplicate order id, already used on item [0]"
    ]


# --- files ------------------------------------------------------------------------------------


def test_a_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_text([good_row()]).encode("utf-8"))
    assert only_order(parse_orders(path)).customer_name == "张三"


def test_upper_case_extension(tmp_path: Path) -> None:
    path = tmp_path / "ORDERS.JSON"
    path.write_text(json.dumps([json_row()]), encoding="utf-8")
    assert only_order(parse_orders(path)).order_id == "T0001"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("orders.xlsx", "whatever", "unsupported file type '.xlsx'; use .csv or .json"),
        ("orders", "whatever", "unsupported file type '(none)'"),
        ("orders.json", "[{", "not valid JSON (line 1, column 3"),
        ("orders.json", '{"order_id": "A"}', "expected a JSON list of orders, found an object"),
        ("orders.json", "[NaN]", "not valid JSON (NaN is not a number an order can have)"),
        ("orders.json", "", "not valid JSON (line 1, column 1"),
        ("orders.csv", "", "the file is empty (expected a header row)"),
        ("orders.csv", b"order_id\n\xff\xfeA\n", "not UTF-8 text (byte 9); save the file as UTF-8"),
        ("orders.csv", ",".join(FIELDS) + '\n"A"x,1\n', "not valid CSV near line 2: "),
    ],
)
def test_unreadable_files_get_one_message(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(ImportFileError) as caught:
        parse_orders(path)
    assert str(caught.value).startswith(str(path) + ": ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=re.escape(": no such file")):
        parse_orders(tmp_path / "nope.csv")


def test_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ImportFileError, match="is a directory"):
        parse_orders(tmp_path / "dir.csv")


def test_header_only_and_empty_list_are_no_orders() -> None:
    assert parse_csv_text(csv_text([])) == ParseResult((), ())
    assert parse_json_text("[]") == ParseResult((), ())


def test_format_errors_caps_a_long_list() -> None:
    errors = [RowError(f"line {i}", "used_days", "bad") for i in range(2, 9)]
    assert format_errors(errors, limit=3) == [
        "line 2, used_days: bad",
        "line 3, used_days: bad",
        "line 4, used_days: bad",
        "… and 4 more problem(s)",
    ]


# --- the demo orders --------------------------------------------------------------------------


def test_demo_json_and_csv_are_the_same_orders() -> None:
    from_json = parse_orders(DATA / "demo-orders.json")
    from_csv = parse_orders(DATA / "demo-orders.csv")
    assert from_json.errors == ()
    assert from_csv.errors == ()
    assert from_json.orders == from_csv.orders
    assert 12 <= len(from_json.orders) <= 16


def test_demo_orders_cover_every_rule() -> None:
    orders = parse_orders(DATA / "demo-orders.json").orders
    by_phone: dict[str, list[Order]] = {}
    for order in orders:
        by_phone.setdefault(order.phone, []).append(order)
    zhang = by_phone["+8613800138000"]
    assert {o.customer_name for o in zhang} == {"张三"}
    assert len(zhang) > len(orders) / 2
    assert len(by_phone) == 2 and all(len(v) >= 2 for v in by_phone.values())

    def has(predicate: Callable[[Order], bool]) -> bool:
        return any(predicate(o) for o in orders)

    recent = datetime(2026, 11, 17, tzinfo=SHANGHAI)
    assert has(
        lambda o: (
            o.category is Category.VIDEO_MEMBERSHIP
            and o.paid_at >= recent
            and not o.is_used
            and o.seven_day_supported
            and o.payment_channel is PaymentChannel.WECHAT
        )
    )
    assert has(
        lambda o: (
            o.category is Category.COURSE
            and o.is_activated
            and not o.activation_exclusion_confirmed
        )
    )
    assert has(
        lambda o: (
            o.category is Category.COURSE and o.is_activated and o.activation_exclusion_confirmed
        )
    )
    assert has(
        lambda o: (
            o.category is Category.GYM
            and o.merchant_status is MerchantStatus.CLOSED
            and o.used_days > 0
        )
    )
    assert has(lambda o: o.merchant_status is MerchantStatus.UNREACHABLE)
    assert has(lambda o: o.category is Category.GAME_POINTS)
    assert has(lambda o: o.category is Category.PHONE_TOPUP)
    assert has(
        lambda o: (
            o.cash_paid_fen == 10000
            and o.used_days == 30
            and o.coupon_fen > 0
            and not o.coupon_refundable
        )
    )
    assert has(lambda o: o.coupon_fen > 0 and o.coupon_refundable)
    assert has(lambda o: o.payment_channel is PaymentChannel.BANK_CARD)
    assert has(lambda o: o.cash_paid_fen == 36500 and o.total_days == 365 and o.used_days == 30)
    pairs = [
        (a, b)
        for a in orders
        for b in orders
        if a.order_id < b.order_id
        and a.phone == b.phone
        and a.product_name == b.product_name
        and abs(a.paid_at - b.paid_at) < timedelta(minutes=10)
    ]
    assert len(pairs) == 1


# --- normalise_phone (bot/phone.py; Telegram contacts will use it too) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138-0013-8000",
        "+8613800138000",
        "8613800138000",
        "008613800138000",
        "0086 138 0013 8000",
        "(+86) 138 0013 8000",
        "+86 (138) 0013-8000",
        "  13800138000\n",
        "１３８００１３８０００",  # full-width digits, as typed with a Chinese input method
        "＋８６ １３８－００１３－８０００",
    ],
)
def test_chinese_mobile_spellings(raw: str) -> None:
    assert normalise_phone(raw) == "+8613800138000"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (202) 555-0123", "+12025550123"),
        ("+65 6123 4567", "+6561234567"),  # 8 digits after the +: the shortest accepted
        ("00852 2123 4567", "+85221234567"),
    ],
)
def test_international_numbers(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "only digits"),
        ("138.0013.8000", "only digits"),
        ("13800138000 ext 12", "only digits"),
        ("1380013800", "neither a Chinese mobile number"),  # 10 digits
        ("138001380001", "neither a Chinese mobile number"),  # 12 digits
        ("12025550123", "not a Chinese mobile number"),  # a US number without its +1
        ("+86 1380013800", "after +86"),
        ("+86 010 1234 5678", "after +86"),  # a Beijing landline: customers link mobiles
        ("+0123456789", "never starts with 0"),
        ("+1234567", "8–15 digits"),
        ("+1234567890123456", "8–15 digits"),
        ("+", "only digits"),
        ("++8613800138000", "only digits"),
    ],
)
def test_rejected_numbers_say_why(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalise_phone(raw)


_mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


def _grouped(digits: str, sep: str) -> str:
    return sep.join((digits[:3], digits[3:7], digits[7:]))


_spellings = st.sampled_from(
    [
        lambda d: d,
        lambda d: "+86" + d,
        lambda d: "86" + d,
        lambda d: "0086" + d,
        lambda d: "+86 " + _grouped(d, " "),
        lambda d: "+86-" + _grouped(d, "-"),
        lambda d: "0086 " + _grouped(d, "-"),
        lambda d: "(+86) " + _grouped(d, " "),
        lambda d: _grouped(d, " "),
        lambda d: f" {d} ",
        lambda d: d.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}),  # full width
    ]
)


@given(digits=_mobiles, spell=_spellings)
def test_any_spelling_of_a_chinese_mobile_is_the_same_number(
    digits: str, spell: Callable[[str], str]
) -> None:
    assert normalise_phone(spell(digits)) == "+86" + digits


@given(digits=st.from_regex(r"1[0-2][0-9]{9}", fullmatch=True))
def test_eleven_digits_that_are_not_a_chinese_mobile_are_refused(digits: str) -> None:
    with pytest.raises(ValueError, match="not a Chinese mobile number"):
        normalise_phone(digits)


# --- importing into a store -------------------------------------------------------------------

LEGAL_KEYS = (
    "cpl_25",
    "measures_art7",
    "impl_reg_19",
    "cpl_44",
    "cpl_53",
    "spc_prepaid_2025",
    "ecl_49",
    "complaint_12315",
)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A minimal valid config.yaml whose store lives in tmp_path/var."""
    legal = {
        key: {
            "cite": {"zh-CN": f"{key} 条文", "en": f"{key} article"},
            "summary": {"zh-CN": f"{key} 摘要", "en": f"{key} summary"},
        }
        for key in LEGAL_KEYS
    }
    path = tmp_path / "config.yaml"
    config = {"store": {"path": "var/refund-bot.sqlite3"}, "legal": legal}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def store_path(config_file: Path) -> Path:
    return config_file.parent / "var" / "refund-bot.sqlite3"


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    opened = SqliteStore.open(":memory:")
    yield opened
    opened.close()


def run_import(config_file: Path, orders_file: Path) -> int:
    return main(["--config", str(config_file), "orders", "import", str(orders_file)])


def stored_orders(path: Path) -> dict[str, Order]:
    """Every order in the store file, found through the customers of the demo phones."""
    opened = SqliteStore.open(path)
    try:
        with opened.unit_of_work() as uow:
            found: dict[str, Order] = {}
            for phone in ("+8613800138000", "+8613900139000"):
                customer = uow.customer_by_phone(phone)
                if customer is not None:
                    found.update({o.order_id: o for o in uow.orders_of(customer.customer_id)})
            return found
    finally:
        opened.close()


def test_import_creates_orders_and_customers(store: SqliteStore) -> None:
    orders = parse_orders(DATA / "demo-orders.json").orders
    summary = import_orders(store, orders)
    assert summary == ImportSummary(new=len(orders), updated=0)
    with store.unit_of_work() as uow:
        zhang = uow.customer_by_phone("+8613800138000")
        assert zhang is not None and zhang.name == "张三"
        mine = {o.order_id for o in uow.orders_of(zhang.customer_id)}
        assert mine == {o.order_id for o in orders if o.phone == "+8613800138000"}
        for order in orders:
            assert uow.order(order.order_id) == order


def test_reimport_updates_rather_than_duplicates(store: SqliteStore) -> None:
    first = parse_csv_text(csv_text([good_row(order_id="A"), good_row(order_id="B")]))
    assert import_orders(store, first.orders) == ImportSummary(new=2, updated=0)
    again = parse_csv_text(
        csv_text(
            [
                good_row(order_id="A", list_price="298.00", cash_paid="288.00"),
                good_row(order_id="C"),
            ]
        )
    )
    summary = import_orders(store, again.orders)
    assert summary == ImportSummary(new=1, updated=1)
    assert str(summary) == "imported 2 orders (1 new, 1 updated)"
    with store.unit_of_work() as uow:
        changed = uow.order("A")
        assert changed is not None
        assert (changed.list_price_fen, changed.cash_paid_fen) == (29800, 28800)
        customer = uow.customer_by_phone("+8613800138000")
        assert customer is not None
        assert sorted(o.order_id for o in uow.orders_of(customer.customer_id)) == ["A", "B", "C"]


class _FailingUpsert:
    """Wraps a real unit of work; the Nth upsert_order raises, as a store error midway would."""

    def __init__(self, inner: UnitOfWork, fail_at: int) -> None:
        self._inner = inner
        self._left = fail_at

    def order(self, order_id: str) -> Order | None:
        return self._inner.order(order_id)

    def upsert_order(self, order: Order) -> None:
        self._left -= 1
        if self._left == 0:
            raise StoreError("disk full")
        self._inner.upsert_order(order)


class _FailingStore:
    def __init__(self, inner: SqliteStore, fail_at: int) -> None:
        self._inner = inner
        self._fail_at = fail_at

    @contextmanager
    def unit_of_work(self) -> Iterator[Any]:
        with self._inner.unit_of_work() as uow:
            yield _FailingUpsert(uow, self._fail_at)

    def close(self) -> None:
        self._inner.close()


def test_a_failure_midway_leaves_the_store_as_it_was(store: SqliteStore) -> None:
    orders = parse_orders(DATA / "demo-orders.json").orders
    with pytest.raises(StoreError, match="disk full"):
        import_orders(_FailingStore(store, fail_at=len(orders)), orders)
    with store.unit_of_work() as uow:
        assert [uow.order(o.order_id) for o in orders] == [None] * len(orders)
        assert uow.customer_by_phone("+8613800138000") is None


def test_summary_wording() -> None:
    assert str(ImportSummary(new=3, updated=9)) == "imported 12 orders (3 new, 9 updated)"
    assert str(ImportSummary(new=1, updated=0)) == "imported 1 order (1 new, 0 updated)"
    assert ImportSummary(new=3, updated=9).total == 12


# --- the command line -------------------------------------------------------------------------


def test_cli_imports_the_demo_then_reimport_updates(
    config_file: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_import(config_file, DATA / "demo-orders.json") == 0
    count = len(parse_orders(DATA / "demo-orders.json").orders)
    assert capsys.readouterr().out == f"imported {count} orders ({count} new, 0 updated)\n"

    assert run_import(config_file, DATA / "demo-orders.csv") == 0
    out = capsys.readouterr()
    assert out.out == f"imported {count} orders (0 new, {count} updated)\n"
    assert out.err == ""
    assert len(stored_orders(store_path)) == count


def test_cli_reimport_shows_a_changed_price(
    config_file: Path, store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(csv_text([good_row(order_id="A"), good_row(order_id="B")]), encoding="utf-8")
    assert run_import(config_file, path) == 0
    path.write_text(
        csv_text([good_row(order_id="A", cash_paid="150.00"), good_row(order_id="B")]),
        encoding="utf-8",
    )
    assert run_import(config_file, path) == 0
    assert capsys.readouterr().out.splitlines() == [
        "imported 2 orders (2 new, 0 updated)",
        "imported 2 orders (0 new, 2 updated)",
    ]
    orders = stored_orders(store_path)
    assert sorted(orders) == ["A", "B"]
    assert orders["A"].cash_paid_fen == 15000


def test_cli_one_bad_row_imports_nothing(
    config_file: Path, store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_import(config_file, DATA / "demo-orders.json") == 0
    before = stored_orders(store_path)
    capsys.readouterr()

    changed = good_row(order_id="XN20261122001", phone="138 0013 8000", cash_paid="1.00")
    rows = [changed, good_row(order_id="NEW1"), good_row(order_id="NEW2", used_days="十")]
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(rows), encoding="utf-8")

    assert run_import(config_file, path) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        "line 4 (order NEW2), used_days: must be a whole number of days like 30 (got '十')",
        f"nothing imported: 1 problem in {path}",
    ]
    assert stored_orders(store_path) == before


def test_cli_lists_every_problem(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [good_row(order_id="A", paid_at="yesterday"), good_row(order_id="A", phone="110")]
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    assert run_import(config_file, path) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 2 (order A), paid_at: must be a date and time like")
    assert err[1].startswith("line 3 (order A), phone: phone number '110' is neither")
    assert err[2] == "line 3 (order A), order_id: duplicate order id, already used on line 2"
    assert err[3] == f"nothing imported: 3 problems in {path}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("orders.txt", "order_id\n", "unsupported file type '.txt'; use .csv or .json"),
        ("orders.json", "[{]", "not valid JSON (line 1, column 3"),
        ("orders.csv", b"\xff\xfe\x00o\x00r", "not UTF-8 text"),
        ("orders.csv", "", "the file is empty"),
    ],
)
def test_cli_unreadable_file_is_one_line_and_exit_1(
    config_file: Path,
    store_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    path = tmp_path / name if content is None else _write(tmp_path, name, content)
    assert run_import(config_file, path) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"orders import: {path}: " + out.err.split(": ", 2)[2]
    assert message in out.err
    assert out.err.count("\n") == 1
    assert "Traceback" not in out.err
    assert not store_path.exists()  # nothing was even opened


def test_cli_store_that_cannot_be_opened(
    config_file: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path.mkdir(parents=True)  # a folder where the database file should be
    assert run_import(config_file, DATA / "demo-orders.csv") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"orders import: cannot open the store {store_path}: ")
    assert err.count("\n") == 1


def test_cli_orders_needs_an_action(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config_file), "orders"])
    assert exited.value.code == 2
    assert "import" in capsys.readouterr().err
