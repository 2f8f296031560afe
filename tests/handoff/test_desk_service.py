"""The agent desk's domain service (bot/handoff) without Telegram: the engine's chat driver for
the customer, the desk's methods called as the transport would call them."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.config import ConfigError
from bot.domain import Category, Priority, Reason, SubReason, TicketStatus
from bot.engine import Copy, HandoffRequested, Reply
from bot.handoff import (
    COMMAND_ACTIONS,
    DESK_COMMANDS,
    Action,
    Agent,
    AgentMessage,
    Desk,
    Done,
    parse_press,
    press_token,
)
from bot.i18n import default_catalog
from bot.orders_import import import_orders
from bot.store import DeskCase
from bot.store.sqlite import SqliteStore
from bot.tickets import submit
from tests.engine.conftest import Chat, apply_for, demo_orders, test_config
from tests.factories import at, make_order

GROUP = -100777
WANG = Agent(9001, "王五")
NOBODY = Agent(7007, "路人甲")
_updates = itertools.count(1)


def desk_app(tmp_path: Path, clock: FixedClock, **desk: Any) -> App:
    settings = {"chat_id": GROUP, "agent_ids": [WANG.user_id], **desk}
    config = test_config(tmp_path, agent_desk=settings)
    store = SqliteStore.open(config.store.path, clock=clock)
    app = build_app(config, clock=clock, store=store)
    import_orders(app.store, demo_orders())
    return app


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at("2026-11-24 10:00"))


@pytest.fixture
def app(tmp_path: Path, clock: FixedClock) -> Iterator[App]:
    application = desk_app(tmp_path, clock)
    yield application
    application.close()


@pytest.fixture
def desk(app: App) -> Desk:
    return Desk(app, "telegram")


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app)


def act(desk: Desk, action: Action, ref: str, arg: str = "", agent: Agent = WANG) -> Done:
    return desk.act(agent, GROUP, action, ref, arg, f"test:{next(_updates)}")


def handed_off(desk: Desk, chat: Chat) -> DeskCase:
    """The customer (linked, one ticket on 星河) asks for a person; the desk opens the case."""
    chat.command("agent")
    (effect,) = [e for e in chat.last.effects if isinstance(e, HandoffRequested)]
    return desk.handoff(effect, chat.key)


@pytest.fixture
def filed(chat: Chat) -> str:
    chat.link()
    return apply_for(chat, "星河", "服务未达标", "权益缺失", photos=1).ticket_no


def outbox(app: App, chat: Chat) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as uow:
        return [m.payload for m in uow.pending_outbox(1000) if m.recipient == chat.key.user_id]


def file_more(app: App, clock: FixedClock) -> tuple[str, str, str]:
    """Three more tickets of the customer +8613800138000: one filed a day later (normal), one
    on the priority channel (high), one quick review (fast). Their numbers, in that order."""
    start = clock.now()
    orders = [
        make_order(order_id="L1", product_name="晚一天的年卡", paid_at=at("2026-11-21 10:00")),
        make_order(
            order_id="H1",
            product_name="倒闭健身房",
            category=Category.GYM,
            paid_at=at("2026-11-01 10:00"),
            merchant_status="closed",
        ),
        make_order(order_id="F1", product_name="买错的网课", paid_at=at("2026-11-23 10:00")),
    ]
    import_orders(app.store, orders)
    filed = []
    for order, reason, sub, later in (
        (orders[0], Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING, timedelta(days=1)),
        (orders[1], Reason.SERVICE_ISSUE, SubReason.MERCHANT_UNREACHABLE, timedelta(0)),
        (orders[2], Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN, timedelta(0)),
    ):
        with app.store.unit_of_work() as uow:
            customer = uow.customer_by_phone(order.phone)
            assert customer is not None
            ticket = submit(
                uow,
                app.config,
                app.calendar,
                customer=customer,
                order=order,
                reason=reason,
                sub_reason=sub,
                requested_fen=1000,
                evidence=[],
                note=None,
                now=start + later,
            )
        filed.append(ticket.ticket_no)
    return filed[0], filed[1], filed[2]


# -- buttons and commands ---------------------------------------------------------------------


def test_press_tokens_round_trip_and_fit_in_callback_data() -> None:
    for action in Action:
        for ref in ("T20261124-0007", "c123456789"):
            token = press_token(action, ref)
            assert parse_press(token) == (action, ref, "")
            assert len(token.encode()) <= 64
            chosen = press_token(action, ref, "outside_seven_days")
            assert parse_press(chosen) == (action, ref, "outside_seven_days")
            assert len(chosen.encode()) <= 64
    for junk in ("", "d:", "d:zz:T1", "d:ap:", "ab12cd.0", "x:ap:T1"):
        assert parse_press(junk) is None
    assert set(COMMAND_ACTIONS.values()) == set(Action) - {Action.OPEN}
    assert {*COMMAND_ACTIONS, "queue", "duty"} == DESK_COMMANDS


def test_only_an_agent_in_the_agent_chat_may_act(tmp_path: Path, clock: FixedClock) -> None:
    app = desk_app(tmp_path, clock)
    try:
        desk = Desk(app, "telegram")
        assert desk.refusal(WANG.user_id, GROUP) is None
        assert desk.refusal(NOBODY.user_id, GROUP) == "仅限客服操作。"
        assert desk.refusal(WANG.user_id, -1) == "请在客服群里操作。"
        assert desk.refusal(WANG.user_id, None) == "请在客服群里操作。"
        done = desk.act(NOBODY, GROUP, Action.CLAIM, "T1", "", "k")
        assert done == Done(False, "仅限客服操作。")
    finally:
        app.close()
    app = desk_app(tmp_path / "nodesk", clock, chat_id=None)
    try:
        assert Desk(app, "telegram").refusal(WANG.user_id, GROUP) == (
            "客服群还没有配置(agent_desk.chat_id)。"
        )
    finally:
        app.close()


# -- cases --------------------------------------------------------------------------------------


def test_one_case_per_ticket_reopened_by_each_handoff(desk: Desk, chat: Chat, filed: str) -> None:
    case = handed_off(desk, chat)
    assert (case.ticket_no, case.reason, case.card_due) == (filed, "customer_asked", True)
    assert case.conversation == chat.key and case.handoff_at is not None
    card = desk.card(case)
    assert card is not None
    assert card.topic_name == f"{filed} · 张三 · 星河视频年卡"
    desk.card_posted(case, GROUP, 42, [1000, 1001])
    assert desk.card(case) is None  # posted: nothing due
    assert desk.case_at(GROUP, 42, None) == desk.case(case)

    chat.press("结束人工")
    again = handed_off(desk, chat)
    assert again.case_id == case.case_id
    assert (again.thread_id, again.card_due) == (42, True)


def test_a_customer_without_a_ticket_has_a_case_of_their_own(desk: Desk, chat: Chat) -> None:
    chat.command("start")  # not linked: no customer, no ticket
    case = handed_off(desk, chat)
    assert (case.ticket_no, case.customer_id, case.conversation) == (None, None, chat.key)
    card = desk.card(case)
    assert card is not None and card.topic_name == "Telegram 1001 · 咨询"
    assert "👤 客户:Telegram 1001(未验证身份) · 语言 zh-CN" in card.text
    assert "🎫 还没有售后单" in card.text
    assert [b.label for b in card.buttons] == ["标准回复…", "交还机器人", "完整记录"]
    named = desk.card(case, "Zhang San")
    assert named is not None and named.topic_name == "Zhang San · 咨询"


def test_a_chat_left_with_a_person_but_no_case_gets_one(desk: Desk, chat: Chat) -> None:
    chat.link()
    chat.command("agent")  # the desk never saw the effect (a crash between turn and desk)
    (due,) = desk.recover()
    assert (due.conversation, due.customer_id, due.card_due) == (chat.key, 1, True)
    assert desk.recover() == [due]  # until its card is posted; no second case


# -- actions ------------------------------------------------------------------------------------


def test_claim_sets_the_holder_audits_and_tells_the_customer_in_their_language(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    handed_off(desk, chat)
    done = act(desk, Action.CLAIM, filed)
    assert done.ok and done.announce and done.text == f"✅ 王五 认领了 {filed}。"
    assert done.deliver == (chat.key,)
    with app.store.unit_of_work() as uow:
        ticket = uow.ticket(filed)
        event = uow.events_of(filed)[-1]
        assert uow.agent_names() == {9001: "王五"}
    assert ticket is not None
    assert (ticket.status, ticket.assignee) == (TicketStatus.IN_REVIEW, 9001)
    assert (event.kind, event.actor, event.data) == ("claim", "agent:9001", {"agent": "王五"})
    assert outbox(app, chat)[-1]["text"] == f"客服 王五 已开始处理你的售后单 {filed}。"


AGENT_STICKER = AgentMessage(GROUP, 13)
TYPED_ONLY = (Action.NOTE, Action.BLOCK, Action.UNBLOCK)  # commands with no button on the card


def test_every_configured_standard_text_exists_in_both_catalogs(app: App) -> None:
    catalog = default_catalog()
    desk = app.config.agent_desk
    keys = [
        f"standard.{kind}.{name}"
        for kind, names in (
            ("reject", desk.reject_reasons),
            ("need", desk.need_requests),
            ("reply", desk.replies),
        )
        for name in names
    ]
    assert len(keys) == 9
    assert [k for k in keys if not catalog.has(k)] == []  # has: in every locale


def test_reject_and_need_without_text_offer_the_standard_texts_and_change_nothing(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    handed_off(desk, chat)
    before = outbox(app, chat)
    for action, names, first in (
        (Action.REJECT, app.config.agent_desk.reject_reasons, "提供的材料看不清或不完整"),
        (Action.NEED, app.config.agent_desk.need_requests, "请上传订单详情页的截图"),
    ):
        done = act(desk, action, filed, " ")
        assert done.ok and done.choices
        assert [parse_press(b.token) for b in done.choices] == [
            (action, filed, name) for name in names
        ]
        assert done.choices[0].label.startswith(first[:10])
    with app.store.unit_of_work() as uow:
        ticket = uow.ticket(filed)
        assert ticket is not None and ticket.status is TicketStatus.SUBMITTED
    assert outbox(app, chat) == before


def test_a_refused_action_changes_nothing(app: App, desk: Desk, chat: Chat, filed: str) -> None:
    handed_off(desk, chat)
    before = outbox(app, chat)
    for action, arg, why in (
        (Action.APPROVE, "200", "金额超过了实付金额减已退款的上限。(上限 ¥198.00)"),
        (Action.APPROVE, "0", "金额必须大于 0。(上限 ¥198.00)"),
        (Action.APPROVE, "九十", "金额格式不对,例如 /approve 91.67"),
        (Action.REFUNDED, "", f"{filed} 现在是「已提交」,这个操作已不可用,什么也没有改。"),
    ):
        assert act(desk, action, filed, arg) == Done(False, why)
    assert act(desk, Action.CLAIM, "T20991231-0001").text == "找不到 T20991231-0001。"
    with app.store.unit_of_work() as uow:
        ticket = uow.ticket(filed)
        assert [e.kind for e in uow.events_of(filed)] == ["submitted"]
        assert uow.refunds_of_order("V1") == []
    assert ticket is not None and ticket.status is TicketStatus.SUBMITTED and ticket.version == 1
    assert outbox(app, chat) == before


def test_the_same_action_twice_has_effect_once(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    handed_off(desk, chat)
    first = desk.act(WANG, GROUP, Action.APPROVE, filed, "", "tg:1")
    second = desk.act(WANG, GROUP, Action.APPROVE, filed, "", "tg:1")
    assert first.ok and second == Done(False, duplicate=True)
    with app.store.unit_of_work() as uow:
        assert len(uow.refunds_of_order("V1")) == 1


def test_asking_for_more_puts_the_customer_into_the_supplement_step(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    handed_off(desk, chat)
    assert chat.state == "handoff.with_agent"
    done = act(desk, Action.NEED, filed, "请上传会员权益页面截图")
    assert done.ok
    assert chat.state == "supplement.upload"
    shown = outbox(app, chat)[-1]["text"]
    assert f"售后单 {filed}:客服请你补充材料:\n请上传会员权益页面截图" in shown
    conv = app.engine.conversation(chat.key)
    assert conv is not None and "handoff" not in conv.data and conv.data["ticket_no"] == filed
    chat.photo("benefits")
    chat.press("上传完成")
    assert chat.tickets()[0].status is TicketStatus.IN_REVIEW
    assert desk.supplemented(filed) is None  # no card posted yet: the card to come shows it
    with app.store.unit_of_work() as uow:
        case = uow.case_of_ticket(filed)
    assert case is not None
    desk.card_posted(case, GROUP, 7, [1])
    supplement = desk.supplemented(filed)
    assert supplement is not None
    assert supplement.text == "📎 客户补充了材料(1 份)"
    assert [(e.file_id, caption) for e, caption in supplement.evidence] == [
        ("fid-benefits", "凭证 1/1")
    ]


def test_return_gives_the_chat_back_only_when_a_person_has_it(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    handed_off(desk, chat)
    done = act(desk, Action.RETURN, filed)
    assert done.ok and chat.state == "menu.main"
    assert outbox(app, chat)[-2]["text"] == "人工服务已结束,退款助手继续为你服务。"
    again = act(desk, Action.RETURN, filed)
    assert again == Done(False, "客户现在没有在和人工客服对话。")
    with app.store.unit_of_work() as uow:
        assert [e.kind for e in uow.events_of(filed)].count("handoff_returned") == 1


def test_an_agents_message_is_signed_and_copied_and_brings_the_person_in(
    app: App, desk: Desk, chat: Chat, filed: str
) -> None:
    case = handed_off(desk, chat)
    chat.press("结束人工")
    assert chat.state == "menu.main"

    def relay(message: AgentMessage) -> Done:
        return desk.relay_to_customer(WANG, GROUP, case, message, f"test:{next(_updates)}")

    assert relay(AgentMessage(GROUP, 11, text="> 您好")).ok
    assert chat.state == "handoff.with_agent"  # the customer's replies go to the agent now
    payloads = outbox(app, chat)
    texts = [p["text"] for p in payloads[-3:]]
    assert texts[0] == "客服 王五 已接入,接下来由 TA 在这里为你服务。"
    assert texts[-1] == "您好\n\n—— 客服 王五"

    relay(AgentMessage(GROUP, 12, caption="> 示例截图", captionable=True))
    relay(
        AgentMessage(GROUP, 14, caption=">", captionable=True)
    )  # addressed, no caption of its own
    # the desk says what to copy and who signs it; how a caption fits is the transport's business
    copies = [Reply.from_payload(p) for p in outbox(app, chat)[-2:]]
    assert copies[0].copy == Copy(GROUP, 12, "示例截图", captionable=True)
    assert copies[1].copy == Copy(GROUP, 14, None, captionable=True)
    assert [c.text for c in copies] == ["—— 客服 王五", "—— 客服 王五"]
    assert "joined" not in " ".join(c.text for c in copies)
    sent = len(outbox(app, chat))
    assert relay(AGENT_STICKER).marked == "note"  # a sticker cannot be addressed: a note
    assert len(outbox(app, chat)) == sent


def test_a_relay_without_a_customer_chat_is_refused(
    desk: Desk, app: App, clock: FixedClock
) -> None:
    _, high, _ = file_more(app, clock)  # filed in the store: the customer never chatted
    opened = act(desk, Action.OPEN, high)
    assert opened.ok and opened.case is not None and opened.case.card_due
    message = AgentMessage(GROUP, 1, text="> hi")
    done = desk.relay_to_customer(WANG, GROUP, opened.case, message, "k")
    assert done == Done(False, "找不到客户的会话,消息没有转出。")


# -- deadlines ----------------------------------------------------------------------------------


def test_an_overdue_review_waits_for_an_agent_chat_to_be_announced_in(
    tmp_path: Path, clock: FixedClock
) -> None:
    app = desk_app(tmp_path, clock, chat_id=None)
    try:
        file_more(app, clock)
        clock.set(at("2026-12-07 10:00"))
        report = Desk(app, "telegram").check_deadlines()
        assert report.deliver == () and report.cases == ()
        with app.store.unit_of_work() as uow:
            kinds = [e.kind for t in uow.open_tickets() for e in uow.events_of(t.ticket_no)]
        assert "overdue_announced" not in kinds
    finally:
        app.close()
    reopened = desk_app(tmp_path, clock)  # the same file, now with an agent chat
    try:
        report = Desk(reopened, "telegram").check_deadlines()
        assert [k.user_id for k in report.deliver] == [str(GROUP)]
        with reopened.store.unit_of_work() as uow:
            announced = [m for m in uow.pending_outbox(100) if m.recipient == str(GROUP)]
        assert len(announced) == 3
        assert Desk(reopened, "telegram").check_deadlines().deliver == ()
    finally:
        reopened.close()


def test_an_overdue_payout_without_a_customer_chat_still_opens_its_case(
    app: App, desk: Desk, clock: FixedClock
) -> None:
    _, high, _ = file_more(app, clock)
    assert act(desk, Action.APPROVE, high).ok
    clock.set(at("2026-12-07 10:00"))
    report = desk.check_deadlines()
    (case,) = report.cases
    assert (case.ticket_no, case.reason, case.card_due) == (high, "payout_overdue", True)
    # the overdue reviews are announced to the agents; nobody to offer a person to
    assert [k.user_id for k in report.deliver] == [str(GROUP)]
    card = desk.card(case)
    assert card is not None and card.text.startswith("🆘 ⚠️ 退款超时,请优先处理")
    assert desk.check_deadlines().cases == ()


def test_the_desk_settings_are_validated_naming_the_field(tmp_path: Path) -> None:
    for field, value, problem in (
        ("transcript_lines", 21, "agent_desk.transcript_lines: must be ≤ 20"),
        ("queue_size", 0, "agent_desk.queue_size: must be ≥ 1"),
        ("deadline_check_seconds", 0, "agent_desk.deadline_check_seconds: must be > 0.0"),
    ):
        with pytest.raises(ConfigError) as raised:
            test_config(tmp_path, agent_desk={field: value})
        assert raised.value.problems == [problem]
    defaults = test_config(tmp_path).agent_desk
    assert (defaults.transcript_lines, defaults.queue_size) == (10, 20)
    assert defaults.deadline_check_seconds == 300


# -- texts --------------------------------------------------------------------------------------

KEY_LITERAL = re.compile(r'"([a-z_]+(?:\.[a-z_0-9]+)+)"')
ROOT = Path(__file__).resolve().parents[2]


def test_every_desk_text_exists_in_both_locales_with_the_same_placeholders() -> None:
    catalog = default_catalog()
    assert catalog.problems() == []
    sources = [
        *ROOT.joinpath("bot", "handoff").glob("*.py"),
        ROOT / "bot" / "telegram" / "_desk.py",
    ]
    namespaces = {k.split(".")[0] for k in catalog.keys()}  # noqa: SIM118  (a method, no dict)
    named = {
        key
        for path in sources
        for key in KEY_LITERAL.findall(path.read_text(encoding="utf-8"))
        if key.split(".")[0] in namespaces
    }
    built = (
        [f"desk.priority.{p.value}" for p in Priority]
        + [f"desk.button.{a.value}" for a in Action if a not in TYPED_ONLY]
        + [
            f"desk.why.{r}"
            for r in ("customer_asked", "appeal", "payout_overdue", "queue", "agent")
        ]
        + [f"desk.channel.{c}" for c in ("wechat", "alipay", "bank_card")]
        + [f"timeline.{k}" for k in ("overdue_announced", "payout_overdue", "handoff_returned")]
        + [f"team.language.{locale}" for locale in catalog.locales]
        + [f"team.duty.{on}" for on in ("on", "off")]
        + [f"team.history.{kind}" for kind in ("note", "to_customer", "from_customer")]
        + [f"team.history.{kind}" for kind in ("blocked", "unblocked")]
    )
    assert {"desk.error.stale", "handoff.joined", "desk.card.head"} <= named
    assert sorted(k for k in {*named, *built} if not catalog.has(k)) == []
