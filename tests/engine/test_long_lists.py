"""Long lists come in pages, newest first, with more / back buttons and a search by number."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import App
from bot.orders_import import import_orders
from tests.engine.conftest import Chat
from tests.factories import at, make_order

MANY = 120


@pytest.fixture
def many(app: App, chat: Chat) -> Chat:
    """The customer has 120 more orders, one a day, the newest bought this morning."""
    newest = at("2026-11-24 09:00")
    orders = [
        make_order(
            order_id=f"XN2026{n:05d}",
            product_name=f"年卡 {n:03d}",
            paid_at=newest - timedelta(days=n),
        )
        for n in range(MANY)
    ]
    import_orders(app.store, orders)
    chat.link()
    return chat


def order_buttons(chat: Chat) -> list[str]:
    return [b for b in chat.buttons() if "XN" in b or "·" in b]


def test_orders_come_a_page_at_a_time_newest_first(app: App, many: Chat) -> None:
    size = app.config.dialogue.page_size
    many.command("refund")
    first = many.buttons()
    assert len(first) <= size + 3  # a page, the next-page button, the global row
    assert "年卡 000" in first[0]  # the newest first
    with app.store.unit_of_work() as uow:
        customer = uow.customer_by_phone("+8613800138000")
        assert customer is not None
        total = len(uow.orders_of(customer.customer_id))
    assert total > MANY  # the shop's own orders of this customer too
    assert f"下一页 ▶(还有 {total - size} 个)" in first
    assert f"共 {total} 个订单" in many.text
    many.press("下一页")
    second = many.buttons()
    assert second[0] != first[0] and "◀ 上一页" in second
    many.press("上一页")
    assert many.buttons() == first
    for _ in range(-(-total // size) - 1):
        many.press("下一页")
    assert not any(b.startswith("下一页") for b in many.buttons())  # the last page


def test_typing_an_order_number_finds_it_and_a_miss_says_so(app: App, many: Chat) -> None:
    many.command("refund")
    many.type("ｘｎ202600117")  # full-width, lower case: still found
    assert "找到 1 个含「xn202600117」的订单" in many.text
    (button,) = [b for b in many.buttons() if "XN202600117" in b]
    assert "显示全部" in many.buttons()
    many.type("XN99999")
    assert many.last.replies[0].key == "apply.search_none"
    assert many.state == "apply.choose_order"
    many.press(button)
    assert many.state == "apply.choose_reason"
    many.press("返回")
    assert any("XN202600117" in b for b in many.buttons())  # back to the search it came from


def test_every_keyboard_stays_within_telegrams_limit(app: App, many: Chat) -> None:
    many.command("refund")
    assert len(many.buttons()) < 100
    many.command("status")
    assert len(many.buttons()) < 100
