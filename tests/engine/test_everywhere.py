"""What works in every state: cancel, talk to a person, the quiet handoff, re-prompts, resuming
after a restart, the one reminder, the language, exactly-once events and button tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import App, build_app, load_dialogue
from bot.clock import FixedClock
from bot.engine import (
    AgentOffered,
    HandoffEnded,
    HandoffRequested,
    Inbound,
    Kind,
    RelayedToAgent,
    ReminderScheduled,
    TurnResult,
)
from bot.store import UnitOfWork
from tests.engine.conftest import REACH, Chat, another_chat, apply_for, outbox_of, reach

STATES = sorted(REACH)
FLOWS, _ = load_dialogue()
WITH_AGENT_BUTTON = [f"{f}.{s}" for f, s in FLOWS.all_states() if FLOWS.state(f, s).global_buttons]


def acted(result: TurnResult) -> list[type]:
    """The effects of a turn besides re-arming the reminder (any turn of the customer's does)."""
    return kinds(result, exclude=ReminderScheduled)


def kinds(result: TurnResult, exclude: type | tuple[type, ...] = ()) -> list[type]:
    return [type(e) for e in result.effects if not isinstance(e, exclude)]


def ticket_rows(chat: Chat) -> list[tuple[str, str]]:
    try:
        return [(t.ticket_no, t.status.value) for t in chat.tickets()]
    except AssertionError:  # not linked: no tickets
        return []


def test_every_declared_state_can_be_reached(app: App) -> None:
    declared = {f"{flow}.{state}" for flow, state in app.flows.all_states()}
    assert declared == set(REACH)


# -- cancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", STATES)
def test_cancel_returns_to_the_menu_and_keeps_the_tickets(app: App, chat: Chat, where: str) -> None:
    reach(app, chat, where)
    before = ticket_rows(chat)
    chat.command("cancel")
    linked = where not in ("start.welcome", "start.ask_order_no", "start.ask_last4", "start.locked")
    assert chat.state == ("menu.main" if linked else "start.welcome")
    assert ticket_rows(chat) == before
    conv = app.engine.conversation(chat.key)
    assert conv is not None
    assert not {"order_id", "quote", "evidence", "amount_fen", "note"} & set(conv.data)


def test_cancel_mid_application_says_so_and_keeps_earlier_tickets(app: App, chat: Chat) -> None:
    chat.link()
    earlier = apply_for(chat, "星河", "七天无理由")
    chat.command("refund")
    chat.press("力健")
    chat.press("服务未达标")
    chat.press("权益缺失")
    chat.press("继续申请")
    chat.photo("x")
    chat.type("取消")
    assert chat.state == "menu.main"
    assert chat.last.replies[0].key == "common.cancelled"
    assert [t.ticket_no for t in chat.tickets()] == [earlier.ticket_no]


def test_the_cancel_button_works_like_the_command(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.amount")
    chat.press("取消")
    assert chat.state == "menu.main"


# -- a person ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["command", "word"])
@pytest.mark.parametrize("where", STATES)
def test_a_person_is_reachable_from_every_state(app: App, chat: Chat, where: str, how: str) -> None:
    reach(app, chat, where)
    result = chat.command("agent") if how == "command" else chat.type("我要人工")
    assert chat.state == "handoff.with_agent"
    did = kinds(result)
    if where != "handoff.with_agent":
        assert HandoffRequested in did
    elif how == "command":  # already with a person: the desk has the case, no second request
        assert HandoffRequested not in did
    else:  # a word typed to the person is the person's to read
        assert did == [RelayedToAgent]


@pytest.mark.parametrize("where", WITH_AGENT_BUTTON)
def test_the_agent_button_under_prompts(app: App, chat: Chat, where: str) -> None:
    reach(app, chat, where)
    result = chat.press("转人工")
    assert chat.state == "handoff.with_agent"
    assert any(isinstance(e, HandoffRequested) for e in result.effects)


def test_the_bot_is_quiet_while_a_person_has_the_chat(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.amount")
    chat.command("agent")
    before = len(outbox_of(app, chat))
    for send in (
        lambda: chat.type("你好,我的卡一直用不了"),
        lambda: chat.type("50"),
        lambda: chat.photo("proof"),
        lambda: chat.share_contact(),
    ):
        result = send()
        assert result.replies == []
        assert kinds(result) == [RelayedToAgent]
        assert chat.state == "handoff.with_agent"
    assert len(outbox_of(app, chat)) == before
    relayed = chat.type("还在吗")
    assert relayed.effects[0] == RelayedToAgent("还在吗", ())


def test_leave_returns_to_the_bot(app: App, chat: Chat) -> None:
    reach(app, chat, "handoff.with_agent")
    result = chat.press("结束人工")
    assert chat.state == "menu.main"
    assert chat.last.replies[0].key == "handoff.back_to_bot"
    assert kinds(result) == [HandoffEnded]
    conv = app.engine.conversation(chat.key)
    assert conv is not None and "handoff" not in conv.data


def test_leave_returns_an_unlinked_customer_to_the_welcome(app: App, chat: Chat) -> None:
    chat.command("start")
    chat.command("agent")
    chat.press("结束人工")
    assert chat.state == "start.welcome"


@pytest.mark.parametrize("command", ["cancel", "menu", "refund", "status"])
def test_leaving_the_handoff_any_way_ends_it(app: App, chat: Chat, command: str) -> None:
    reach(app, chat, "handoff.with_agent")
    result = chat.command(command)
    assert chat.state != "handoff.with_agent"
    handoffs = [t for t in kinds(result) if t in (HandoffRequested, HandoffEnded)]
    assert handoffs == [HandoffEnded]
    conv = app.engine.conversation(chat.key)
    assert conv is not None and "handoff" not in conv.data


def test_the_desk_returning_the_chat_brings_the_bot_back(app: App, chat: Chat) -> None:
    reach(app, chat, "handoff.with_agent")
    result = chat.send(Kind.SYSTEM, command="returned")
    assert chat.state == "menu.main"
    assert kinds(result) == [HandoffEnded]


# -- misunderstanding -------------------------------------------------------------------------


def test_three_misunderstood_inputs_in_a_row_offer_an_agent(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.choose_reason")
    for _ in range(2):
        result = chat.type("嗯嗯嗯")
        assert chat.last.replies[0].key == "common.misunderstood"
        assert "common.offer_agent" not in [r.key for r in result.replies]
        assert "七天无理由" in chat.buttons()  # the buttons again
    result = chat.type("嗯嗯嗯")
    assert [r.key for r in result.replies] == [
        "common.misunderstood",
        "common.offer_agent",
        "apply.choose_reason",
    ]
    assert [type(e) for e in result.effects if isinstance(e, AgentOffered)] == [AgentOffered]
    assert "转人工" in chat.buttons()
    assert chat.state == "apply.choose_reason"
    # the count starts again
    result = chat.type("嗯嗯嗯")
    assert "common.offer_agent" not in [r.key for r in result.replies]


def test_an_understood_answer_resets_the_count(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.choose_order")
    chat.type("啊")
    chat.type("啊")
    chat.press("星河")
    chat.type("啊")
    result = chat.type("啊")
    assert "common.offer_agent" not in [r.key for r in result.replies]


def test_typed_answers_a_step_refuses_count_as_misunderstood(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.amount")
    chat.type("全部")
    chat.type("都退")
    result = chat.type("all of it")
    assert [r.key for r in result.replies] == [
        "amount.error.format",
        "common.offer_agent",
        "apply.amount",
    ]
    assert chat.state == "apply.amount"


def test_typing_a_buttons_label_presses_it(app: App, chat: Chat) -> None:
    reach(app, chat, "menu.main")
    chat.type("我的售后")
    assert chat.state == "status.list"


def test_unknown_commands_and_help(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.precheck")
    chat.command("frobnicate")
    assert chat.state == "apply.precheck"
    assert chat.last.replies[0].key == "common.misunderstood"
    chat.command("help")
    assert chat.state == "apply.precheck"
    assert chat.last.replies[0].key == "common.help"
    assert chat.last.replies[-1].key == "apply.precheck"


def test_start_mid_flow_welcomes_back_where_the_customer_was(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.evidence")
    chat.command("start")
    assert chat.state == "apply.evidence"
    assert [r.key for r in chat.last.replies] == ["common.welcome_back", "apply.evidence"]


# -- resume, reminders ------------------------------------------------------------------------


def test_a_restart_resumes_the_conversation_and_its_buttons(
    app: App, chat: Chat, clock: FixedClock
) -> None:
    reach(app, chat, "apply.precheck")
    replies = chat.replies
    app.close()
    restarted = build_app(app.config, clock=clock)
    try:
        again = Chat(restarted, user_id=chat.user_id)
        again.replies = replies  # the buttons still on the customer's screen
        assert again.state == "apply.precheck"
        again.press("继续申请")
        assert again.state == "apply.evidence"
        again.press("上传完成")
        again.type("100")
        again.press("确认提交")
        assert again.state == "status.detail"
        (ticket,) = again.tickets()
        assert ticket.requested_fen == 10000
    finally:
        restarted.close()


def test_one_reminder_after_the_delay(app: App, chat: Chat, clock: FixedClock) -> None:
    reach(app, chat, "apply.choose_reason")
    delay = app.config.dialogue.reminder_after_minutes
    clock.advance(timedelta(minutes=delay - 1))
    assert app.engine.fire_reminders() == []
    clock.advance(timedelta(minutes=2))
    (reminder,) = app.engine.fire_reminders()
    assert [r.key for r in reminder.replies] == ["common.reminder", "apply.choose_reason"]
    assert reminder.replies[-1].buttons  # the buttons again, to continue with one press
    assert outbox_of(app, chat)[-2]["key"] == "common.reminder"
    assert app.engine.fire_reminders() == []
    clock.advance(timedelta(days=3))
    assert app.engine.fire_reminders() == []
    assert chat.state == "apply.choose_reason"
    # the reminder's buttons work; acting again arms a new reminder
    chat.replies = reminder.replies
    chat.press("七天无理由")
    clock.advance(timedelta(minutes=delay + 1))
    assert len(app.engine.fire_reminders()) == 1


@pytest.mark.parametrize(
    "where", ["menu.main", "status.list", "handoff.with_agent", "start.welcome"]
)
def test_no_reminder_where_nothing_is_left_unfinished(
    app: App, chat: Chat, clock: FixedClock, where: str
) -> None:
    reach(app, chat, where)
    clock.advance(timedelta(days=1))
    assert app.engine.fire_reminders() == []


def test_a_reminder_is_cancelled_by_finishing(app: App, chat: Chat, clock: FixedClock) -> None:
    reach(app, chat, "apply.confirm")
    chat.press("确认提交")
    clock.advance(timedelta(days=1))
    assert app.engine.fire_reminders() == []


# -- language ---------------------------------------------------------------------------------


def test_language_switches_to_english_and_back(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.choose_reason")
    chat.command("language")
    assert chat.state == "apply.choose_reason"
    assert chat.last.replies[0].text == "Switched to English."
    assert "Please choose a reason" in chat.text
    assert chat.buttons()[:2] == ["7-day no-reason return", "Service not as promised"]
    chat.press("Service not as promised")
    assert chat.state == "apply.choose_sub_reason"
    chat.command("language")
    assert chat.last.replies[0].text == "已切换为中文。"
    assert "权益缺失或降级" in chat.buttons()


def test_the_menus_language_button_and_the_choice_is_remembered(app: App, chat: Chat) -> None:
    chat.link()
    chat.press("English")
    assert chat.buttons() == ["Request a refund", "My requests", "中文"]
    other_chat = another_chat(chat, "second-device")
    other_chat.command("menu")
    assert "Request a refund" in other_chat.buttons()


def test_a_new_customer_is_greeted_in_the_clients_language(app: App) -> None:
    english = Chat(app, user_id=4242, language="en-GB")
    english.command("start")
    assert "Share phone number" in english.buttons()[0]


def test_english_words_for_a_person_and_cancel(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.choose_reason")
    chat.command("language")
    chat.type("cancel")
    assert chat.state == "menu.main"
    chat.command("refund")
    chat.type("I want a human")
    assert chat.state == "handoff.with_agent"


# -- exactly once and button tokens -----------------------------------------------------------


def test_the_same_event_twice_takes_effect_once(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.confirm")
    token = chat.token("确认提交")
    first = chat.send(Kind.BUTTON, dedupe="update:77", token=token)
    sent = len(outbox_of(app, chat))
    second = chat.send(Kind.BUTTON, dedupe="update:77", token=token)
    assert not first.duplicate and first.effects
    assert second.duplicate and second.replies == [] and second.effects == []
    assert len(chat.tickets()) == 1
    assert len(outbox_of(app, chat)) == sent


def test_a_duplicate_text_is_not_taken_twice(app: App, chat: Chat) -> None:
    reach(app, chat, "start.ask_last4")
    event = Inbound(chat.key, Kind.TEXT, "update:5", sender_id=chat.user_id, text="1111")
    app.engine.handle(event)
    app.engine.handle(event)
    conv = app.engine.conversation(chat.key)
    assert conv is not None and conv.data["link_failures"] == 1


def test_the_callers_writes_commit_with_the_turn_and_not_for_a_duplicate(
    app: App, chat: Chat
) -> None:
    calls: list[str] = []

    def also(uow: UnitOfWork) -> None:
        calls.append("also")
        uow.mark_processed(f"also:{len(calls)}", app.clock.now())

    event = Inbound(chat.key, Kind.COMMAND, "update:9", sender_id=chat.user_id, command="help")
    assert not app.engine.handle(event, also).duplicate
    assert app.engine.handle(event, also).duplicate
    assert calls == ["also"]  # the duplicate did not write
    with app.store.unit_of_work() as uow:
        assert uow.mark_processed("also:1", app.clock.now()) is False  # committed with the turn

    def failing(uow: UnitOfWork) -> None:
        uow.mark_processed("also:failed", app.clock.now())
        raise RuntimeError("the caller's write failed")

    other = Inbound(chat.key, Kind.COMMAND, "update:10", sender_id=chat.user_id, command="help")
    with pytest.raises(RuntimeError):
        app.engine.handle(other, failing)
    with app.store.unit_of_work() as uow:  # the whole turn rolled back, the caller's rows too
        assert uow.mark_processed("also:failed", app.clock.now()) is True
        assert uow.mark_processed("update:10", app.clock.now()) is True


def test_a_button_of_an_older_prompt_is_stale(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.choose_reason")
    old = chat.token("七天无理由")
    chat.press("服务未达标")
    before = app.engine.conversation(chat.key)
    result = chat.send(Kind.BUTTON, token=old)
    assert result.button_answer == "这个按钮已失效,请使用最新消息中的按钮。"
    assert result.replies == [] and acted(result) == []
    assert chat.state == "apply.choose_sub_reason"
    after = app.engine.conversation(chat.key)
    assert before is not None and after is not None
    assert after.data["menu"] == before.data["menu"]  # the current buttons still work
    chat.press("权益缺失")
    assert chat.state == "apply.precheck"


@pytest.mark.parametrize(
    "token", ["", "0", "abc", ".0", "zzzzzz.0", "zzzzzz.-1", "x" * 500, "1.2.3"]
)
def test_a_forged_token_does_nothing(app: App, chat: Chat, token: str) -> None:
    reach(app, chat, "apply.confirm")
    result = chat.send(Kind.BUTTON, token=token)
    assert result.button_answer is not None
    assert result.replies == [] and acted(result) == []
    assert chat.state == "apply.confirm"
    assert chat.tickets() == []


def test_an_out_of_range_index_with_the_right_nonce_does_nothing(app: App, chat: Chat) -> None:
    reach(app, chat, "apply.confirm")
    nonce = chat.token("确认提交").split(".")[0]
    for index in ("99", "-1", "1e3", "٣"):
        result = chat.send(Kind.BUTTON, token=f"{nonce}.{index}")
        assert result.button_answer is not None
        assert result.replies == [] and acted(result) == []
        assert chat.state == "apply.confirm"


def test_a_token_from_another_customers_chat_does_nothing_to_either(app: App) -> None:
    owner = Chat(app, user_id=1001)
    reach(app, owner, "apply.confirm")
    stranger = Chat(app, user_id=3003)
    stranger.command("start")
    owner_outbox, stranger_outbox = len(outbox_of(app, owner)), len(outbox_of(app, stranger))
    stolen = owner.token("确认提交")
    result = stranger.send(Kind.BUTTON, token=stolen)
    assert result.button_answer is not None and result.replies == []
    assert stranger.state == "start.welcome"
    assert owner.state == "apply.confirm"
    assert owner.tickets() == []
    assert len(outbox_of(app, owner)) == owner_outbox
    assert len(outbox_of(app, stranger)) == stranger_outbox
    # the owner's button still works for the owner
    owner.press("确认提交")
    assert len(owner.tickets()) == 1


def test_an_unlinked_customer_leaving_the_handoff_ends_it_too(app: App, chat: Chat) -> None:
    chat.command("start")
    chat.command("agent")
    result = chat.command("cancel")
    assert chat.state == "start.welcome"
    assert kinds(result) == [HandoffEnded]


@pytest.mark.parametrize("where", ["start.welcome", "menu.main", "status.list", "status.detail"])
def test_the_offered_agent_button_is_there_where_the_row_is_left_out(
    app: App, chat: Chat, where: str
) -> None:
    reach(app, chat, where)
    assert "转人工" not in chat.buttons()
    for _ in range(app.config.dialogue.misunderstood_before_agent):
        result = chat.type("嗯?")
    assert "common.offer_agent" in [r.key for r in result.replies]
    assert chat.buttons()[-1] == "转人工"
    chat.press("转人工")
    assert chat.state == "handoff.with_agent"
