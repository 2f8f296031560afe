"""The Telegram tests' world: the shop's customers and orders, the config, and the harness of
bot.testing with the shop's orders imported and a customer's usual first steps.

The fake Bot API, the update builder and the harness itself are bot.testing's (shared with the
dialogue runner, the reliability tests and the benchmark)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from bot.config import Config, deep_merge, parse_config
from bot.domain import Order
from bot.store import Store
from bot.testing import DEMO_PHONE, Harness, User, inline_buttons
from tests.factories import at, make_order, repo_config

PHONE = DEMO_PHONE
NOW = at("2026-11-24 10:00")
ALICE = User(1001, language_code="en")
BOB = User(2002, first_name="李四", language_code="en")
GROUP = {"id": -100123, "type": "supergroup", "title": "客服台"}
# the button labels from the main menu to the evidence step of a "service not as promised" request
TO_EVIDENCE = (
    "Request a refund",
    "星河视频年卡",
    "Service not as promised",
    "Benefits missing",
    "Continue request",
)


def buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, callback_data) of a recorded call's inline keyboard."""
    return inline_buttons(params.get("reply_markup"))


def shop_orders() -> list[Order]:
    return [
        make_order(
            order_id="V1",
            product_name="星河视频年卡",
            cash_paid_fen=19800,
            list_price_fen=19800,
            paid_at=at("2026-11-22 10:00"),
        ),
        make_order(
            order_id="X1", product_name="别人的年卡", phone="+8613900139000", customer_name="李四"
        ),
    ]


def free_port() -> int:
    """A loopback port free now (tests, and other checkouts, run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def telegram_config(tmp_path: Path, **overrides: Any) -> Config:
    data = deep_merge(
        repo_config().model_dump(mode="json"),
        {
            "store": {"path": str(tmp_path / "bot.sqlite3")},
            # the repeating jobs never fire during a test: the tests call them directly
            "telegram": {"outbox_interval_seconds": 3600, "reminder_interval_seconds": 3600},
            # any free port: tests (and other checkouts) run side by side
            "metrics": {"port": 0},
        },
    )
    return parse_config(deep_merge(data, overrides))


class ShopHarness(Harness):
    """bot.testing's harness, starting with the shop's orders (unless given others)."""

    async def start(
        self,
        orders: Sequence[Order] | None = None,
        *,
        wrap_store: Callable[[Store], Store] | None = None,
    ) -> Self:
        chosen = shop_orders() if orders is None else orders
        return await super().start(chosen, wrap_store=wrap_store)

    async def link(self, user: User) -> None:
        """/start and share the own phone: the customer is at the main menu."""
        await self.process(self.updates.command(user, "start"))
        await self.process(self.updates.contact(user, PHONE))
        assert self.state(user) == "menu.main"

    async def to_evidence(self, user: User) -> None:
        """Linked, then through the application up to the evidence upload step."""
        await self.link(user)
        for label in TO_EVIDENCE:
            await self.press(user, label)
        assert self.state(user) == "apply.evidence"

    def evidence(self, user: User) -> list[dict[str, Any]]:
        """The files collected so far in the customer's application."""
        items: list[dict[str, Any]] = self.conversation(user).data.get("evidence", [])
        return items
