"""A chat driver for engine tests: a customer who types, presses buttons by label, sends files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.config import Config, deep_merge, parse_config
from bot.domain import EvidenceKind, Order, Ticket
from bot.engine import ContactInfo, FileInfo, Inbound, Kind, Reply, TurnResult
from bot.orders_import import import_orders
from bot.store import ConversationKey
from bot.store.sqlite import SqliteStore
from tests.factories import at, make_order, repo_config

_ids = itertools.count(1)


class Chat:
    """One Telegram-like customer (user id = chat id) talking to the engine."""

    def __init__(self, app: App, user_id: int = 1001, language: str | None = None) -> None:
        self.app = app
        self.user_id = user_id
        self.key = ConversationKey("telegram", str(user_id))
        self.language = language
        self.last: TurnResult = TurnResult()
        self.replies: list[Reply] = []

    # -- what the customer does --------------------------------------------------------------

    def send(self, kind: Kind, dedupe: str | None = None, **fields: Any) -> TurnResult:
        event = Inbound(
            self.key,
            kind,
            dedupe or f"test:{next(_ids)}",
            sender_id=self.user_id,
            language_code=self.language,
            **fields,
        )
        self.last = self.app.engine.handle(event)
        if self.last.replies:
            self.replies = self.last.replies
        return self.last

    def command(self, name: str) -> TurnResult:
        return self.send(Kind.COMMAND, command=name)

    def type(self, text: str) -> TurnResult:
        return self.send(Kind.TEXT, text=text)

    def press(self, label: str) -> TurnResult:
        """Press the button whose label contains `label` in the latest message with buttons."""
        token = self.token(label)
        return self.send(Kind.BUTTON, token=token)

    def token(self, label: str) -> str:
        for reply in reversed(self.replies):
            for b in reply.buttons:
                if label in b.label and b.token:
                    return b.token
        raise AssertionError(f"no button {label!r} in {self.buttons()}")

    def share_contact(self, phone: str = "+8613800138000", user_id: int | None = -1) -> TurnResult:
        owner = self.user_id if user_id == -1 else user_id
        return self.send(Kind.CONTACT, contact=ContactInfo(phone, owner))

    def photo(
        self, name: str = "shot", size: int = 200_000, kind: EvidenceKind = EvidenceKind.PHOTO
    ) -> TurnResult:
        return self.send(Kind.FILE, files=(file_info(name, size, kind),))

    # -- what the customer sees --------------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.last.replies)

    def buttons(self) -> list[str]:
        for reply in reversed(self.replies):
            if reply.buttons:
                return [b.label for b in reply.buttons]
        return []

    @property
    def state(self) -> str:
        conv = self.app.engine.conversation(self.key)
        assert conv is not None
        return f"{conv.flow}.{conv.state}"

    def link(self) -> None:
        self.command("start")
        self.share_contact()
        assert self.state == "menu.main", self.text

    def tickets(self) -> list[Ticket]:
        with self.app.store.unit_of_work() as uow:
            customer = uow.customer_by_telegram(self.user_id)
            assert customer is not None
            return uow.tickets_of_customer(customer.customer_id)


def file_info(name: str, size: int = 200_000, kind: EvidenceKind = EvidenceKind.PHOTO) -> FileInfo:
    return FileInfo(
        kind=kind,
        file_id=f"fid-{name}",
        file_unique_id=f"uid-{name}",
        size_bytes=size,
        file_name=None,
    )


def test_config(tmp_path: Path, **overrides: Any) -> Config:
    data = deep_merge(
        repo_config().model_dump(mode="json"), {"store": {"path": str(tmp_path / "t.sqlite3")}}
    )
    return parse_config(deep_merge(data, overrides))


def demo_orders() -> list[Order]:
    """A handful of orders of the customer +8613800138000, bought before 2026-11-24 10:00."""
    return [
        make_order(
            order_id="V1",
            product_name="星河视频年卡",
            cash_paid_fen=19800,
            list_price_fen=19800,
            paid_at=at("2026-11-22 10:00"),
        ),
        make_order(
            order_id="C1",
            product_name="知行网课年卡",
            category="course",
            cash_paid_fen=59900,
            list_price_fen=59900,
            paid_at=at("2026-11-20 20:00"),
            activated_at=at("2026-11-20 20:10"),
        ),
        make_order(
            order_id="G1",
            product_name="幻境点卡",
            category="game_points",
            paid_at=at("2026-11-23 10:00"),
        ),
        make_order(
            order_id="Y1",
            product_name="力健健身年卡",
            category="gym",
            cash_paid_fen=268000,
            list_price_fen=268000,
            paid_at=at("2026-03-01 10:00"),
            used_days=240,
            merchant_status="closed",
        ),
        make_order(
            order_id="M1",
            product_name="电子书年卡",
            paid_at=at("2026-10-25 10:00"),
            used_days=30,
            list_price_fen=11000,
            coupon_fen=1000,
            cash_paid_fen=10000,
        ),
        make_order(
            order_id="X1", product_name="别人的年卡", phone="+8613900139000", customer_name="李四"
        ),
    ]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at("2026-11-24 10:00"))


@pytest.fixture
def app(tmp_path: Path, clock: FixedClock) -> Iterator[App]:
    config = test_config(tmp_path)
    store = SqliteStore.open(config.store.path, clock=clock)
    application = build_app(config, clock=clock, store=store)
    import_orders(application.store, demo_orders())
    yield application
    application.close()


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app)


def advance(clock: FixedClock, **delta: float) -> None:
    clock.advance(timedelta(**delta))
