"""The customer's side of the desk in the engine (issue 15): no desk configured never promises a
person and notes the request on the ticket; outside business hours the customer is told when a
person will answer; a blocked chat gets the fixed answer and still sees its tickets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.engine import HandoffRequested
from bot.orders_import import import_orders
from bot.store import Block
from bot.store.sqlite import SqliteStore
from tests.engine.conftest import Chat, apply_for, demo_orders, test_config
from tests.factories import at


def _app(tmp_path: Path, clock: FixedClock, **desk: Any) -> App:
    config = test_config(tmp_path, agent_desk=desk)
    app = build_app(config, clock=clock, store=SqliteStore.open(config.store.path, clock=clock))
    import_orders(app.store, demo_orders())
    return app


@pytest.fixture
def no_desk(tmp_path: Path, clock: FixedClock) -> Iterator[App]:
    app = _app(tmp_path, clock, chat_id=None, contact={"hotline": "400-800-1234"})
    yield app
    app.close()


def test_without_a_desk_a_person_is_never_promised(no_desk: App) -> None:
    chat = Chat(no_desk)
    chat.link()
    result = chat.type("人工")
    assert chat.state == "menu.main"
    assert result.replies[0].key == "care.no_desk_plain"
    assert "400-800-1234" in result.replies[0].text
    assert not [e for e in result.effects if isinstance(e, HandoffRequested)]


def test_without_a_desk_the_request_is_noted_on_the_ticket(no_desk: App) -> None:
    chat = Chat(no_desk)
    chat.link()
    ticket = apply_for(chat, "星河", "服务未达标", "权益缺失", photos=1)
    result = chat.command("agent")
    assert result.replies[0].key == "care.no_desk"
    with no_desk.store.unit_of_work() as uow:
        noted = uow.events_of(ticket.ticket_no)[-1]
    assert (noted.kind, noted.actor, noted.data) == (
        "handoff_requested",
        "customer",
        {"desk": "none"},
    )
    assert chat.state == "status.detail"


def test_outside_business_hours_the_customer_is_told_when_a_person_answers(
    tmp_path: Path, clock: FixedClock
) -> None:
    clock.set(at("2026-11-28 11:00"))  # a Saturday
    app = _app(tmp_path, clock, chat_id=-100123, hours={"start": "09:00", "end": "18:00"})
    try:
        chat = Chat(app)
        chat.link()
        result = chat.command("agent")
        assert chat.state == "handoff.with_agent"
        keys = [r.key for r in result.replies]
        assert keys[0] == "care.after_hours"
        assert "2026-11-30 09:00" in result.replies[0].text
        clock.set(at("2026-11-30 09:00"))
        chat.press("结束人工")
        assert [r.key for r in chat.command("agent").replies] == ["handoff.with_agent"]
    finally:
        app.close()


def test_a_blocked_chat_gets_the_fixed_answer_and_keeps_its_tickets(app: App, chat: Chat) -> None:
    chat.link()
    apply_for(chat, "星河", "服务未达标", "权益缺失", photos=1)
    with app.store.unit_of_work() as uow:
        uow.block(Block(chat.key, "辱骂", "agent:9001", app.clock.now()))
    for attempt in (lambda: chat.command("agent"), lambda: chat.command("refund")):
        result = attempt()
        assert result.replies[0].key == "care.blocked"
        assert chat.state in ("menu.main", "status.detail")
    chat.command("status")
    assert chat.state == "status.list"
    assert "T20261124-0001" in chat.text
