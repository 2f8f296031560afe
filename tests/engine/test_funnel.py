"""The turn records the funnel steps it reached, in its own transaction (issue 16's reports)."""

from __future__ import annotations

from datetime import timedelta

from bot.app import App
from tests.engine.conftest import Chat, another_chat, apply_for


def funnel(app: App) -> tuple[dict[str, int], dict[str, int]]:
    now = app.clock.now()
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    with app.store.unit_of_work() as uow:
        return uow.funnel(start, end), uow.handoff_reasons(start, end)


def test_an_application_a_stop_at_the_precheck_and_a_handoff(app: App, chat: Chat) -> None:
    chat.link()
    apply_for(chat, "星河", "七天无理由", photos=2)
    other = another_chat(chat, "李四")
    other.link()
    other.command("refund")
    other.press("星河")
    other.press("七天无理由")  # sees the pre-check, stops there
    assert other.state == "apply.precheck"
    for _ in range(3):
        other.type("嗯?")  # misunderstood three times: a person is offered
    other.press("转人工")
    steps, handoffs = funnel(app)
    # two photos are one conversation that uploaded evidence
    assert steps == {"started": 2, "precheck": 2, "evidence": 1, "submitted": 1, "offered": 1}
    assert handoffs == {"customer_asked": 1}


def test_a_duplicate_update_records_nothing_twice(app: App, chat: Chat) -> None:
    chat.link()
    chat.command("refund")
    before = funnel(app)
    chat.command("refund")  # still in the application: not started again
    assert funnel(app) == before == ({"started": 1}, {})
