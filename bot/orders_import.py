"""Orders import: read the shop's CSV/JSON export, check every row, then write all of it or nothing.

Two steps on purpose: `parse_orders` is pure (file in, orders and row errors out, no store), so a
bad file is fully reported before anything is touched; `import_orders` writes already-valid orders
in one unit of work, so a crash or a store error leaves the store as it was.
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
from typing import Any, Final

from pydantic import ValidationError

from bot.clock import SHANGHAI
from bot.domain import Category, MerchantStatus, Order, PaymentChannel
from bot.money import format_fen, parse_yuan
from bot.phone import normalise_phone
from bot.store import Store

# The file format, in the order the demo CSV writes its columns.
FIELDS: Final[tuple[str, ...]] = (
    "order_id",
    "phone",
    "customer_name",
    "product_name",
    "category",
    "list_price",
    "cash_paid",
    "coupon_amount",
    "coupon_refundable",
    "paid_at",
    "service_start",
    "service_end",
    "activated_at",
    "activation_exclusion_confirmed",
    "used_days",
    "payment_channel",
    "seven_day_supported",
    "merchant_status",
)

# Columns that may be left out (or left empty) because their default is the safe reading: no
# coupon, not activated, no exclusion confirmed (so the exclusion does not hold), nothing used,
# merchant reachable. `seven_day_supported` is deliberately required: either default would decide
# refunds for the shop without anyone having said so.
OPTIONAL_DEFAULTS: Final[Mapping[str, object]] = {
    "coupon_amount": 0,
    "coupon_refundable": False,
    "activated_at": None,
    "activation_exclusion_confirmed": False,
    "used_days": 0,
    "merchant_status": MerchantStatus.ACTIVE,
}
REQUIRED_FIELDS: Final[tuple[str, ...]] = tuple(f for f in FIELDS if f not in OPTIONAL_DEFAULTS)

# File field -> Order attribute where they differ (the file speaks yuan, the model fen).
_MODEL_NAME: Final[Mapping[str, str]] = {
    "list_price": "list_price_fen",
    "cash_paid": "cash_paid_fen",
    "coupon_amount": "coupon_fen",
}
_FILE_NAME: Final[Mapping[str, str]] = {v: k for k, v in _MODEL_NAME.items()}

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
            continue
        label = _id_of(item)
        unknown = [key for key in item if key not in FIELDS]
        if unknown:
            errors.append(RowError(where, None, _unknown_text(unknown, "key"), label))
        missing = [name for name in REQUIRED_FIELDS if name not in item]
        errors.extend(RowError(where, name, "is missing (required)", label) for name in missing)
        if unknown or missing:
            continue
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


# --- rows -----------------------------------------------------------------------------------


class _Bad(ValueError):
    """A field value that cannot be used; the message is the operator-facing reason."""


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
    raw = row.get("order_id")
    if _is_empty(raw):
        return None
    try:
        return _order_id(raw)
    except _Bad:
        return None


def _position(error: RowError) -> int:
    digits = "".join(ch for ch in error.where if ch.isdigit())
    return int(digits) if digits else -1


def _parse_row(where: str, row: Mapping[str, object]) -> tuple[Order | None, list[RowError]]:
    label = _id_of(row)
    values: dict[str, object] = {}
    errors: list[RowError] = []
    for name in FIELDS:
        raw = row.get(name)
        try:
            if _is_empty(raw):
                if name not in OPTIONAL_DEFAULTS:
                    raise _Bad("is empty (required)")
                values[name] = OPTIONAL_DEFAULTS[name]
            else:
                values[name] = _PARSERS[name](raw)
        except _Bad as exc:
            errors.append(RowError(where, name, str(exc), label))
    if errors:
        return None, errors
    try:
        order = Order(**{_MODEL_NAME.get(name, name): value for name, value in values.items()})
    except ValidationError as exc:
        errors = [_model_error(where, e, label, values) for e in exc.errors(include_url=False)]
        return None, errors
    return order, []


def _model_error(
    where: str, error: Mapping[str, Any], label: str | None, values: Mapping[str, object]
) -> RowError:
    loc = error.get("loc") or ()
    if loc:
        name = str(loc[0])
        return RowError(where, _FILE_NAME.get(name, name), _lower_first(error["msg"]), label)
    # A cross-field check of Order; its message starts with the field it is about.
    message = str((error.get("ctx") or {}).get("error", error["msg"]))
    field = next((name for name in FIELDS if message.startswith(name)), None)
    detail = _detail(field, values)
    return RowError(where, field, f"{message} ({detail})" if detail else message, label)


def _detail(field: str | None, values: Mapping[str, object]) -> str:
    """The numbers behind a failed cross-field check, so the operator need not look them up."""
    start, end = values.get("service_start"), values.get("service_end")
    if field == "service_end" and isinstance(start, datetime) and isinstance(end, datetime):
        return f"{_local(start)} → {_local(end)}"
    if field == "cash_paid":
        cash, coupon, price = (values.get(n) for n in ("cash_paid", "coupon_amount", "list_price"))
        if isinstance(cash, int) and isinstance(coupon, int) and isinstance(price, int):
            return f"{format_fen(cash)} + {format_fen(coupon)} > {format_fen(price)}"
    if field == "used_days" and isinstance(start, datetime) and isinstance(end, datetime):
        return f"{values.get('used_days')} days used, the service period has {(end - start).days}"
    return ""


def _local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _is_empty(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


# --- fields ---------------------------------------------------------------------------------


def _text(raw: object) -> str:
    if isinstance(raw, str):
        return raw.strip()
    raise _Bad(f"must be text, found {_json_kind(raw)}")


def _order_id(raw: object) -> str:
    # Shop systems often export numeric ids; JSON then has a number, which is still the same id.
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    value = _text(raw)
    if len(value) > 64:
        raise _Bad(f"is {len(value)} characters long; at most 64 are allowed")
    return value


def _phone(raw: object) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)  # 13800138000 written as a JSON number
    try:
        return normalise_phone(_text(raw))
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _yuan(raw: object) -> int:
    if isinstance(raw, bool):
        raise _Bad("must be an amount in yuan like 199.00, found true/false")
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, Decimal):
        # The JSON number as written ("19.99" stays 19.99); 'f' spells 1E+2 as 100.
        text = format(raw, "f")
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise _Bad(f"must be an amount in yuan like 199.00, found {_json_kind(raw)}")
    if text.startswith("-"):
        raise _Bad(f"must not be negative (got {text})")
    if _TOO_PRECISE.fullmatch(text):
        raise _Bad(f"has more than 2 decimals (got {text}); amounts are exact to the fen (0.01)")
    try:
        return parse_yuan(text)
    except ValueError:
        raise _Bad(f"must be an amount in yuan like 199.00 or 0.29 (got {text!r})") from None


def _whole_days(raw: object) -> int:
    if isinstance(raw, bool):
        raise _Bad("must be a whole number of days, found true/false")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        value = int(raw.strip())
    elif isinstance(raw, str) and raw.strip().startswith("-"):
        raise _Bad(f"must not be negative (got {raw.strip()})")
    else:
        shown = format(raw, "f") if isinstance(raw, Decimal) else raw
        raise _Bad(f"must be a whole number of days like 30 (got {shown!r})")
    if value < 0:
        raise _Bad(f"must not be negative (got {value})")
    return value


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
    raise _Bad(f"must be true/false, yes/no, 1/0 or 是/否 (got {shown!r})")


def _choice(
    kind: type[Category] | type[PaymentChannel] | type[MerchantStatus],
) -> Callable[[object], object]:
    allowed = ", ".join(member.value for member in kind)

    def parse(raw: object) -> object:
        word = _text(raw)
        try:
            return kind(word.lower())
        except ValueError:
            raise _Bad(f"must be one of {allowed} (got {word!r})") from None

    return parse


def _moment(raw: object) -> datetime:
    """A point in time: date and time of day, naive meaning Shanghai wall-clock time."""
    text = _text(raw)
    if _is_date_only(text):
        # paid_at decides the seven-day window and duplicate detection: a bare date is too vague.
        raise _Bad(f"needs a time of day as well, like {text} 14:30 (got {text!r})")
    return _datetime(text)


def _day_start(raw: object) -> datetime:
    """A service boundary: a date alone means 00:00 Shanghai time that day."""
    text = _text(raw)
    if _is_date_only(text):
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=SHANGHAI)
    return _datetime(text)


def _is_date_only(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(
            f"must be a date and time like 2026-11-20 14:30 or 2026-11-20T14:30:00+08:00 "
            f"(got {text!r})"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=SHANGHAI)  # the shop's exports are in China time
    return moment.astimezone(SHANGHAI)


_PARSERS: Final[Mapping[str, Callable[[object], object]]] = {
    "order_id": _order_id,
    "phone": _phone,
    "customer_name": _text,
    "product_name": _text,
    "category": _choice(Category),
    "list_price": _yuan,
    "cash_paid": _yuan,
    "coupon_amount": _yuan,
    "coupon_refundable": _boolean,
    "paid_at": _moment,
    "service_start": _day_start,
    "service_end": _day_start,
    "activated_at": _moment,
    "activation_exclusion_confirmed": _boolean,
    "used_days": _whole_days,
    "payment_channel": _choice(PaymentChannel),
    "seven_day_supported": _boolean,
    "merchant_status": _choice(MerchantStatus),
}


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
