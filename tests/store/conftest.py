"""Fixtures of the store contract tests: a `store` per backend and small model factories.

Every test that takes `store` (or `open_store`) runs once per backend in BACKENDS: SQLite on a
file of its own, PostgreSQL on a database of its own (a clone of one migrated template; see
postgres.py: the server must be there, the tests fail if it is not).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SHANGHAI
from bot.domain import (
    BreakdownLine,
    Category,
    Customer,
    Evidence,
    EvidenceKind,
    EvidenceRequirement,
    Order,
    Outcome,
    PaymentChannel,
    Priority,
    Quote,
    Reason,
    RefundEntry,
    RefundState,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.store import SqliteStore, Store, UnitOfWork
from bot.store.postgres import PostgresStore

from .postgres import Databases

BACKENDS = ["sqlite", "postgresql"]

# A fixed moment in Shanghai time: the store must hand it back as the same instant (in UTC).
NOW = datetime(2026, 11, 24, 10, 30, 15, 123456, tzinfo=SHANGHAI)
DAY = date(2026, 11, 24)
PHONE = "+8613800138000"

OpenStore = Callable[[], Store]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """The test server's throwaway databases (all dropped at the end of the session)."""
    databases = Databases()
    yield databases
    databases.close()


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, migrated (PostgreSQL) or not yet created (SQLite) database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}"
        return
    databases: Databases = request.getfixturevalue("pg_databases")
    url = databases.create()
    yield url
    databases.drop(url)


@pytest.fixture
def open_store(backend: str, database_url: str) -> Iterator[OpenStore]:
    """Open another store on the same (per-test) database, as a second process would."""
    opened: list[Store] = []

    def _open() -> Store:
        if backend == "sqlite":
            store: Store = SqliteStore.open(database_url.removeprefix("sqlite:///"))
        else:
            store = PostgresStore.open(database_url, min_size=1, max_size=4)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """A store on a fresh, empty database."""
    return open_store()


class Make:
    """Factories of valid domain values with overridable fields."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def order(self, order_id: str = "O1", **changes: Any) -> Order:
        fields: dict[str, Any] = {
            "order_id": order_id,
            "phone": PHONE,
            "customer_name": "张三",
            "product_name": "腾讯视频 VIP 年卡",
            "category": Category.VIDEO_MEMBERSHIP,
            "list_price_fen": 12_000,
            "cash_paid_fen": 10_000,
            "coupon_fen": 2_000,
            "coupon_refundable": True,
            "paid_at": NOW - timedelta(days=3),
            "service_start": NOW - timedelta(days=3),
            "service_end": NOW + timedelta(days=362),
            "activated_at": None,
            "activation_exclusion_confirmed": False,
            "used_days": 0,
            "payment_channel": PaymentChannel.WECHAT,
            "seven_day_supported": True,
        }
        fields.update(changes)
        return Order(**fields)

    def quote(self, order_id: str = "O1", **changes: Any) -> Quote:
        fields: dict[str, Any] = {
            "order_id": order_id,
            "reason": Reason.SEVEN_DAY,
            "sub_reason": None,
            "outcome": Outcome.REVIEW,
            "amount_fen": 10_000,
            "cap_fen": 10_000,
            "breakdown": (
                BreakdownLine(key="breakdown.cash_paid", amount_fen=10_000),
                BreakdownLine(key="breakdown.coupon", amount_fen=-2_000, params={"coupon": "满减"}),
            ),
            "coupon_returned_fen": 2_000,
            "evidence": EvidenceRequirement(
                min_count=1,
                max_files=5,
                max_size_bytes=10 * 1024 * 1024,
                allowed_kinds=(EvidenceKind.PHOTO, EvidenceKind.PDF),
                hint_key="evidence.hint.activation_dispute",
            ),
            "priority": Priority.NORMAL,
            "review_due": DAY + timedelta(days=3),
            "payout_window": (1, 3),
            "explanation": ("decision.seven_day.review", "decision.activation.unconfirmed"),
            "explanation_params": {"amount": "¥100.00", "days": 7},
            "legal_refs": ("cpl_25", "seven_day_measures_7"),
            "offers": ("agent",),
        }
        fields.update(changes)
        return Quote(**fields)

    def ticket(
        self, ticket_no: str, customer_id: int, order_id: str = "O1", **changes: Any
    ) -> Ticket:
        fields: dict[str, Any] = {
            "ticket_no": ticket_no,
            "order_id": order_id,
            "customer_id": customer_id,
            "reason": Reason.SEVEN_DAY,
            "requested_fen": 10_000,
            "quote": self.quote(order_id),
            "review_due": DAY + timedelta(days=3),
            "created_at": NOW,
            "updated_at": NOW,
        }
        fields.update(changes)
        return Ticket(**fields)

    def evidence(self, ticket_no: str | None, **changes: Any) -> Evidence:
        n = next(self._seq)
        fields: dict[str, Any] = {
            "ticket_no": ticket_no,
            "kind": EvidenceKind.PHOTO,
            "file_id": f"AgACAgUAAxkBAAI{n}",
            "file_unique_id": f"AQAD{n}",
            "size_bytes": 123_456,
            "mime_type": "image/jpeg",
            "caption": "观看记录截图",
            "sha256": "ab" * 32,
            "added_at": NOW,
        }
        fields.update(changes)
        return Evidence(**fields)

    def event(self, ticket_no: str, **changes: Any) -> TicketEvent:
        fields: dict[str, Any] = {
            "ticket_no": ticket_no,
            "at": NOW,
            "actor": "customer:1",
            "kind": "submitted",
            "from_status": None,
            "to_status": TicketStatus.SUBMITTED,
            "data": {"note": "首次提交", "amount_fen": 10_000, "files": ["a", "b"]},
        }
        fields.update(changes)
        return TicketEvent(**fields)

    def refund(
        self,
        key: str,
        amount_fen: int,
        ticket_no: str = "T20261124-0001",
        order_id: str = "O1",
        state: RefundState = RefundState.PENDING,
        **changes: Any,
    ) -> RefundEntry:
        fields: dict[str, Any] = {
            "idempotency_key": key,
            "ticket_no": ticket_no,
            "order_id": order_id,
            "amount_fen": amount_fen,
            "channel": PaymentChannel.WECHAT,
            "state": state,
            "created_at": NOW,
        }
        fields.update(changes)
        return RefundEntry(**fields)

    def seed(self, uow: UnitOfWork, order: Order | None = None) -> tuple[Order, Customer]:
        """Store an order (default: O1) and return it with its customer."""
        order = order or self.order()
        uow.upsert_order(order)
        customer = uow.customer_by_phone(order.phone)
        assert customer is not None
        return order, customer

    def seed_ticket(
        self, uow: UnitOfWork, ticket_no: str = "T20261124-0001", **changes: Any
    ) -> Ticket:
        """Store order O1 (cash paid ¥100) and an open ticket on it."""
        order, customer = self.seed(uow)
        ticket = self.ticket(ticket_no, customer.customer_id, order.order_id, **changes)
        uow.add_ticket(ticket)
        return ticket


@pytest.fixture
def make() -> Make:
    """Factories of domain values."""
    return Make()
