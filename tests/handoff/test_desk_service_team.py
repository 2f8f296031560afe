"""The team's desk services without Telegram (issue 15): notes kept and never in the outbox, the
card showing notes, the rating and a block, a rating asked once, duty refused to non-agents."""

from __future__ import annotations

import itertools

from bot.app import App
from bot.engine import Kind
from bot.handoff import Action, AgentMessage, Desk, Done, build_card
from bot.store import Rating
from tests.engine.conftest import Chat
from tests.handoff.test_desk_service import (
    GROUP,
    NOBODY,
    WANG,
    app,
    chat,
    clock,
    desk,
    filed,
    handed_off,
    outbox,
)

__all__ = ["app", "chat", "clock", "desk", "filed"]  # fixtures
_keys = itertools.count(1)


def act(desk: Desk, action: Action, ref: str, arg: str = "") -> Done:
    """An agent action with a dedupe key of its own (the customer's chat uses "test:N")."""
    return desk.act(WANG, GROUP, action, ref, arg, f"team:{next(_keys)}")


def test_an_unaddressed_message_is_a_note_and_nothing_reaches_the_outbox(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    case = handed_off(desk, chat)
    before = outbox(app, chat)
    for n, message in enumerate(
        (
            AgentMessage(GROUP, 21, text="这个客户上个月也退过"),
            AgentMessage(GROUP, 22, caption="后台截图", captionable=True),
            AgentMessage(GROUP, 23, text="> 转发的", forwarded=True),
            AgentMessage(GROUP, 24),  # a sticker
        )
    ):
        done = desk.relay_to_customer(WANG, GROUP, case, message, f"note:{n}")
        assert done.ok and done.marked == "note" and not done.deliver
    assert outbox(app, chat) == before
    assert act(desk, Action.NOTE, filed, "").text == "备注不能为空:/note 备注内容"
    with app.store.unit_of_work() as uow:
        assert case.case_id is not None
        kept = [(e.kind, e.text) for e in uow.case_entries(case.case_id)]
        card = build_card(desk.texts, uow, case, app.clock.now(), "")
    assert kept == [
        ("note", "这个客户上个月也退过"),
        ("note", "后台截图"),
        ("note", "> 转发的"),
        ("note", "[文件]"),
    ]
    assert "📝 内部备注(4 条,客户看不到)" in card.text and "· 王五:> 转发的" in card.text


def test_the_card_shows_a_block_and_the_rating_and_the_rating_is_asked_once(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    case = handed_off(desk, chat)
    assert act(desk, Action.BLOCK, filed, "骚扰").ok
    assert act(desk, Action.UNBLOCK, filed).ok
    assert act(desk, Action.BLOCK, filed, "再次骚扰").ok
    assert act(desk, Action.REJECT, filed, "outside_seven_days").ok
    with app.store.unit_of_work() as uow:
        ticket = uow.ticket(filed)
        assert ticket is not None
        # rejected once: an appeal is left, so the ticket has not ended and nobody is asked
        assert [e.kind for e in uow.events_of(filed)].count("rating_asked") == 0
        assert uow.events_of(filed)[-1].data["reason"] == "已超过七天无理由退货期限。"
        uow.add_rating(Rating(filed, 2, app.clock.now(), "太慢"))
        card = build_card(desk.texts, uow, case, app.clock.now(), "")
    assert "⛔ 已拉黑:再次骚扰" in card.text
    assert "⭐ 客户评分 ★★ · “太慢”" in card.text
    # the customer is blocked: a request for a person gets the fixed answer
    chat.send(Kind.COMMAND, command="agent")
    assert chat.last.replies[0].key == "care.blocked"


def test_duty_is_for_agents_in_the_agent_chat_and_says_who_is_on(desk: Desk) -> None:
    assert desk.duty(NOBODY, GROUP, "on").text == "仅限客服操作。"
    assert not desk.duty(WANG, GROUP, "maybe").ok
    assert desk.duty(WANG, GROUP, "on").text == "🟢 王五 开始值班。值班中:王五"
    assert desk.duty(WANG, GROUP, "OFF").text == "⚪ 王五 下班了。值班中:无人"
