"""Orders import: read the shop's CSV/JSON export, check every row, then write all of it or nothing.

Two steps on purpose: `parse_orders` is pure (file in, orders and row errors out, no store), so a
bad file is fully reported before anything is touched; `import_orders` writes already-valid orders
in one unit of work, so a crash or a store error leaves the store as it was. One pydantic model,
`OrderRow`, is the file format: its aliases are the column names, its validators the reasons.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.clock import SHANGHAI
from bot.domain import Category, MerchantStatus, Order, PaymentChannel
from bot.money import format_fen, parse_yuan
from bot.phone import normalise_phone
from bot.store import Store

# An amount parse_yuan would refuse only for its decimals: worth its own message.
_TOO_PRECISE: Final = re.compile(r"[¥￥]?\s*\d+\.\d{3,}\s*元?")

_TRUE: Final[frozenset[str]] = frozenset({"true", "1", "yes", "是"})
_FALSE: Final[frozenset[str]] = frozenset({"false", "0", "no", "否"})

# Large enough for any real shop export, small enough that a wrong file does not flood a terminal.
MAX_REPORTED_ERRORS: Final[int] = 100


class ImportFileError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, not JSON/CSV, wrong extension)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in the file: where (a CSV line or a JSON index), which field, and why."""

    where: str  # "line 5" (CSV, physical line, header is line 1) or "item [3]" (JSON, from 0)
    field: str | None  # None when the problem is the row as a whole
    reason: str
    order_id: str | None = None

    def __str__(self) -> str:
        place = self.where + (f" (order {self.order_id})" if self.order_id else "")
        return f"{place}, {self.field}: {self.reason}" if self.field else f"{place}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Every order of a file that parsed, and every problem found; import only when `ok`."""

    orders: tuple[Order, ...]
    errors: tuple[RowError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class ImportSummary:
    new: int
    updated: int

    @property
    def total(self) -> int:
        return self.new + self.updated

    def __str__(self) -> str:
        noun = "order" if self.total == 1 else "orders"
        return f"imported {self.total} {noun} ({self.new} new, {self.updated} updated)"


def parse_orders(path: Path) -> ParseResult:
    """Read a .csv or .json orders file and check every row; ImportFileError if it is unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ImportFileError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .csv or .json"
        )
    try:
        # utf-8-sig: Excel on Windows writes a BOM in front of "UTF-8" CSV files.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if suffix == ".csv":
        return parse_csv_text(text, source=str(path))
    return parse_json_text(text, source=str(path))


def parse_csv_text(text: str, source: str = "<csv>") -> ParseResult:
    """Parse CSV text with a header row; line numbers in errors are physical lines of the text."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError(f"{source}: the file is empty (expected a header row)")
        columns = [name.strip() for name in header]
        header_errors = _check_columns(columns, "line 1")
        if header_errors:
            return ParseResult((), tuple(header_errors))
        rows: list[tuple[str, Mapping[str, object]]] = []
        errors: list[RowError] = []
        while True:
            # csv counts lines it has consumed; a record (even one with a quoted line break in a
            # field) starts on the line after the previous record ended.
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not any(cell.strip() for cell in cells):
                continue  # blank lines (and rows of empty cells) are layout, not orders
            where = f"line {start}"
            if len(cells) != len(columns):
                at = columns.index("order_id")
                order_id = cells[at].strip() if at < len(cells) else None
                errors.append(
                    RowError(
                        where,
                        None,
                        f"has {len(cells)} cells but the header has {len(columns)} columns "
                        "(check for a stray or missing comma, or an unquoted comma in a value)",
                        order_id or None,
                    )
                )
                continue
            rows.append((where, dict(zip(columns, cells, strict=True))))
    except csv.Error as exc:
        raise ImportFileError(
            f"{source}: not valid CSV near line {reader.line_num}: {exc}"
        ) from None
    return _parse_rows(rows, errors)


def parse_json_text(text: str, source: str = "<json>") -> ParseResult:
    """Parse a JSON list of order objects; errors name the item by its index, counted from 0."""
    try:
        # Decimal keeps 19.99 exactly as written; a float would already have lost the fen.
        data = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except ValueError as exc:
        raise ImportFileError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ImportFileError(f"{source}: expected a JSON list of orders, found {_json_kind(data)}")
    rows: list[tuple[str, Mapping[str, object]]] = []
    errors: list[RowError] = []
    for index, item in enumerate(data):
        where = f"item [{index}]"
        if not isinstance(item, dict):
            errors.append(RowError(where, None, f"must be an object, found {_json_kind(item)}"))
        else:
            rows.append((where, item))
    return _parse_rows(rows, errors)


def import_orders(store: Store, orders: Sequence[Order]) -> ImportSummary:
    """Upsert all orders (and their customers) in one unit of work; re-importing updates."""
    new = updated = 0
    with store.unit_of_work() as uow:
        for order in orders:
            if uow.order(order.order_id) is None:
                new += 1
            else:
                updated += 1
            uow.upsert_order(order)
    return ImportSummary(new=new, updated=updated)


def format_errors(errors: Sequence[RowError], limit: int = MAX_REPORTED_ERRORS) -> list[str]:
    """Operator-facing lines for the errors, cut at `limit` with a count of the rest."""
    lines = [str(error) for error in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"… and {len(errors) - limit} more problem(s)")
    return lines


# --- fields: each parser turns one cell (CSV text or a JSON value) into a value or says why not ---


def _text(raw: object) -> str:
    if isinstance(raw, str):
        return raw.strip()
    raise ValueError(f"must be text, found {_json_kind(raw)}")


def _order_id(raw: object) -> str:
    # Shop systems often export numeric ids; JSON then has a number, which is still the same id.
    value = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else _text(raw)
    if len(value) > 64:
        raise ValueError(f"is {len(value)} characters long; at most 64 are allowed")
    return value


def _phone(raw: object) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)  # 13800138000 written as a JSON number
    return normalise_phone(_text(raw))  # its ValueError already says why, for people


def _number_text(raw: object) -> str:
    # A JSON number as written ("19.99" stays 19.99; 'f' spells 1E+2 as 100), or the cell's text.
    return format(raw, "f") if isinstance(raw, Decimal) else str(raw).strip()


def _yuan(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise ValueError(f"must be an amount in yuan like 199.00, found {_json_kind(raw)}")
    text = _number_text(raw)
    if text.startswith("-"):
        raise ValueError(f"must not be negative (got {text})")
    if _TOO_PRECISE.fullmatch(text):
        raise ValueError(
            f"has more than 2 decimals (got {text}); amounts are exact to the fen (0.01)"
        )
    try:
        return parse_yuan(text)
    except ValueError:
        raise ValueError(f"must be an amount in yuan like 199.00 or 0.29 (got {text!r})") from None


def _whole_days(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("must be a whole number of days, found true/false")
    text = _number_text(raw)
    if text.startswith("-"):
        raise ValueError(f"must not be negative (got {text})")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"must be a whole number of days like 30 (got {text!r})")
    return int(text)


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    shown = raw.strip() if isinstance(raw, str) else raw
    raise ValueError(f"must be true/false, yes/no, 1/0 or 是/否 (got {shown!r})")


_Choice = TypeVar("_Choice", Category, PaymentChannel, MerchantStatus)


def _choice(kind: type[_Choice]) -> Callable[[object], _Choice]:
    allowed = ", ".join(member.value for member in kind)

    def parse(raw: object) -> _Choice:
        word = _text(raw)
        try:
            return kind(word.lower())
        except ValueError:
            raise ValueError(f"must be one of {allowed} (got {word!r})") from None

    return parse


def _moment(raw: object) -> datetime:
    """A point in time: date and time of day, naive meaning Shanghai wall-clock time."""
    # paid_at decides the seven-day window and duplicate detection: a bare date is too vague.
    return _datetime(raw, date_alone=None)


def _day_start(raw: object) -> datetime:
    """A service boundary: a date alone means 00:00 Shanghai time that day."""
    return _datetime(raw, date_alone=time(0))


def _datetime(raw: object, date_alone: time | None) -> datetime:
    text = _text(raw)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if date_alone is None:
            raise ValueError(f"needs a time of day as well, like {text} 14:30 (got {text!r})")
        return datetime.combine(day, date_alone, tzinfo=SHANGHAI)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"must be a date and time like 2026-11-20 14:30 or 2026-11-20T14:30:00+08:00 "
            f"(got {text!r})"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=SHANGHAI)  # the shop's exports are in China time
    return moment.astimezone(SHANGHAI)


def _cell(parse: Callable[[object], object]) -> PlainValidator:
    """The whole validation of one field: an empty cell, then the field's own parser."""

    def validate(raw: object) -> object:
        if _is_empty(raw):
            raise ValueError("is empty (required)")  # empty optional cells never get here
        return parse(raw)

    return PlainValidator(validate)


def _is_empty(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


_Text = Annotated[str, _cell(_text)]
_Yuan = Annotated[int, _cell(_yuan)]
_Flag = Annotated[bool, _cell(_boolean)]
_Moment = Annotated[datetime, _cell(_moment)]
_DayStart = Annotated[datetime, _cell(_day_start)]


class OrderRow(BaseModel):
    """One row of the file. Field order is the order of checks and of a row's errors; aliases are
    the file's names where the Order's differ (the file speaks yuan, the Order fen). A field with a
    default may be left out or left empty, because its default is the safe reading: no coupon, not
    activated, no exclusion confirmed (so it does not hold), nothing used, merchant reachable.
    `seven_day_supported` is required on purpose: either default would decide refunds for the shop
    without anyone having said so."""

    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[str, _cell(_order_id)]
    phone: Annotated[str, _cell(_phone)]
    customer_name: _Text
    product_name: _Text
    category: Annotated[Category, _cell(_choice(Category))]
    list_price_fen: _Yuan = Field(alias="list_price")
    coupon_fen: _Yuan = Field(0, alias="coupon_amount")  # before cash_paid, whose check reads it
    cash_paid_fen: _Yuan = Field(alias="cash_paid")
    coupon_refundable: _Flag = False
    paid_at: _Moment
    service_start: _DayStart
    service_end: _DayStart
    activated_at: Annotated[datetime | None, _cell(_moment)] = None
    activation_exclusion_confirmed: _Flag = False
    used_days: Annotated[int, _cell(_whole_days)] = 0
    payment_channel: Annotated[PaymentChannel, _cell(_choice(PaymentChannel))]
    seven_day_supported: _Flag
    merchant_status: Annotated[MerchantStatus, _cell(_choice(MerchantStatus))] = (
        MerchantStatus.ACTIVE
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_takes_the_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {k: v for k, v in data.items() if not (k in _OPTIONAL and _is_empty(v))}

    # The Order's consistency rules, each checked as soon as the fields it reads are valid, so a
    # row reports them together with the other fields' problems, with the numbers behind them.
    @field_validator("cash_paid_fen")
    @classmethod
    def _within_list_price(cls, cash: int, info: ValidationInfo) -> int:
        price, coupon = info.data.get("list_price_fen"), info.data.get("coupon_fen")
        if price is not None and coupon is not None and cash + coupon > price:
            raise ValueError(
                "cash_paid + coupon_amount must not exceed list_price "
                f"({format_fen(cash)} + {format_fen(coupon)} > {format_fen(price)})"
            )
        return cash

    @field_validator("service_end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("service_start")
        if start is not None and end <= start:
            raise ValueError(
                f"service_end must be after service_start ({_local(start)} → {_local(end)})"
            )
        return end

    @field_validator("used_days")
    @classmethod
    def _within_period(cls, used: int, info: ValidationInfo) -> int:
        start, end = info.data.get("service_start"), info.data.get("service_end")
        if start is not None and end is not None and used > (end - start).days:
            raise ValueError(
                "used_days must not exceed the service period "
                f"({used} days used, the service period has {(end - start).days})"
            )
        return used

    def to_order(self) -> Order:
        return Order(**self.model_dump())


# The file format: column (or JSON key) names in the model's order, and those that must be there.
FIELDS: Final[tuple[str, ...]] = tuple(
    field.alias or name for name, field in OrderRow.model_fields.items()
)
REQUIRED_FIELDS: Final[tuple[str, ...]] = tuple(
    field.alias or name for name, field in OrderRow.model_fields.items() if field.is_required()
)
_OPTIONAL: Final[frozenset[str]] = frozenset(FIELDS) - frozenset(REQUIRED_FIELDS)


# --- rows -----------------------------------------------------------------------------------


def _check_columns(columns: Sequence[str], where: str) -> list[RowError]:
    errors: list[RowError] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            errors.append(RowError(where, name, "column appears more than once"))
        seen.add(name)
    if "" in seen:
        errors.append(RowError(where, None, "a column has no name (a stray comma in the header?)"))
    unknown = [name for name in columns if name and name not in FIELDS]
    if unknown:
        errors.append(RowError(where, None, _unknown_text(unknown, "column")))
    errors.extend(
        RowError(where, name, "column is missing (required)")
        for name in REQUIRED_FIELDS
        if name not in seen
    )
    return errors


def _unknown_text(names: Sequence[str], kind: str) -> str:
    shown = ", ".join(repr(name) for name in names)
    plural = "s" if len(names) > 1 else ""
    return f"unknown {kind}{plural} {shown} (allowed: {', '.join(FIELDS)})"


def _parse_rows(
    rows: Sequence[tuple[str, Mapping[str, object]]], errors: list[RowError]
) -> ParseResult:
    orders: list[Order] = []
    first_seen: dict[str, str] = {}
    for where, row in rows:
        order, row_errors = _parse_row(where, row)
        # Checked on the id alone, so a duplicate is reported even when either row has other errors.
        order_id = _id_of(row)
        if order_id is not None:
            earlier = first_seen.setdefault(order_id, where)
            if earlier != where:
                reason = f"duplicate order id, already used on {earlier}"
                row_errors.append(RowError(where, "order_id", reason, order_id))
        if row_errors:
            errors.extend(row_errors)
        elif order is not None:
            orders.append(order)
    # Errors in file order, so the operator can walk down the file fixing them.
    errors.sort(key=_position)
    return ParseResult(tuple(orders), tuple(errors))


def _id_of(row: Mapping[str, object]) -> str | None:
    try:
        return _order_id(row.get("order_id")) or None
    except ValueError:
        return None


def _position(error: RowError) -> int:
    digits = "".join(ch for ch in error.where if ch.isdigit())
    return int(digits) if digits else -1


def _parse_row(where: str, row: Mapping[str, object]) -> tuple[Order | None, list[RowError]]:
    try:
        valid = OrderRow.model_validate(row)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
    else:
        return valid.to_order(), []  # OrderRow checks all that Order does: this cannot fail
    label = _id_of(row)
    unknown = [str(e["loc"][0]) for e in found if e["type"] == "extra_forbidden"]
    errors = [RowError(where, None, _unknown_text(unknown, "key"), label)] if unknown else []
    for error in found:
        if error["type"] == "missing":
            errors.append(RowError(where, str(error["loc"][0]), "is missing (required)", label))
        elif error["type"] != "extra_forbidden":
            reason = str(error.get("ctx", {}).get("error", error["msg"]))
            errors.append(RowError(where, str(error["loc"][0]), reason, label))
    return None, errors


def _local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number an order can have")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
