"""The agent desk through python-telegram-bot, both sides offline: a customer in a private chat,
agents in a forum supergroup, raw update JSON in, Bot API calls out (tests/handoff/desk.py)."""

from __future__ import annotations

import pytest

from bot.clock import FixedClock
from bot.config import Config
from bot.domain import RefundState, SentAs, TicketStatus
from bot.store import ConversationKey
from bot.telegram import TelegramDesk, conversation_key
from bot.testing import Failure, FakeTelegram, Updates
from tests.factories import at
from tests.handoff.desk import (
    AGENT1,
    AGENT2,
    FORUM,
    GROUP_ID,
    NOT_A_FORUM,
    OTHER_GROUP,
    PLAIN_GROUP,
    STRANGER,
    Agents,
    case_of,
    events,
    file_ticket,
    ledger,
    ticket,
)
from tests.handoff.test_desk_service import file_more
from tests.telegram.support import ALICE, ShopHarness, buttons

NO = "T20261124-0001"  # the first ticket of the day


async def hand_off(h: ShopHarness) -> int:
    """The customer asks for a person (/agent) about their ticket: the case's topic id."""
    await h.process(h.updates.command(ALICE, "agent"))
    assert h.state(ALICE) == "handoff.with_agent"
    return case_thread(h)


@pytest.fixture
async def thread(harness: ShopHarness) -> int:
    """The customer filed a ticket and asked for a person about it: the topic of its case."""
    await file_ticket(harness)
    return await hand_off(harness)


def case_thread(h: ShopHarness) -> int:
    thread = case_of(h, NO).thread_id
    assert thread is not None
    return thread


def card(tg: FakeTelegram, thread: int | None) -> dict[str, object]:
    """The newest case card (the desk message with buttons) in a topic, or in the group."""
    cards = [
        p
        for p in tg.to(GROUP_ID, "sendMessage")
        if p.get("message_thread_id") == thread and buttons(p)
    ]
    assert cards, tg.texts(GROUP_ID)
    return cards[-1]


def customer_texts(tg: FakeTelegram) -> list[str]:
    return tg.texts(ALICE.id)


# -- a handoff opens the case -----------------------------------------------------------------


async def test_a_handoff_opens_a_topic_with_the_case_card_and_the_evidence(
    harness: ShopHarness, tg: FakeTelegram, thread: int
) -> None:
    assert [t["name"] for t in tg.topics] == [f"{NO} · 张三 · 星河视频年卡"]
    assert tg.topics[0]["message_thread_id"] == thread
    shown = card(tg, thread)
    text = str(shown["text"])
    for part in (
        "🆘 客户要求转人工",
        "👤 客户:张三 · +8613800138000 · 语言 en",
        "· V1 星河视频年卡 · 实付 ¥198.00 · 2026-11-22 · 微信支付  ← 本单",
        f"🎫 售后单 {NO} · 已提交 · 优先级 普通 · 处理人 未认领",
        "原因:服务未达标 · 权益缺失或降级",
        "预审:可以申请,需客服审核",
        "会员权益缺失或被降级属于未按约定提供服务。",
        "金额明细:\n实付金额 ¥198.00\n可退金额 ¥198.00",
        "申请 ¥198.00 · 可批上限 ¥198.00",
        "⏰ 审核截止 2026-11-27 · 到账 通过后 1-3 个工作日",
        "📎 凭证 1 份,见下方",
        "💬 最近对话:",
        "客户:/agent",
        "/approve [金额]",
    ):
        assert part in text, part
    assert buttons(shown) == [
        ("认领", f"d:cl:{NO}"),
        ("通过 ¥198.00", f"d:ap:{NO}"),
        ("驳回…", f"d:rj:{NO}"),
        ("要补充材料…", f"d:nd:{NO}"),
        ("标准回复…", f"d:re:{NO}"),
        ("交还机器人", f"d:rt:{NO}"),
        ("完整记录", f"d:hi:{NO}"),
    ]
    # the evidence, re-sent by file_id into the topic
    (photo,) = tg.to(GROUP_ID, "sendPhoto")
    assert photo["photo"] == "evidence-1"
    assert photo["message_thread_id"] == thread
    assert photo["caption"] == "凭证 1/1"
    # the customer is told, in English (their Telegram's language)
    assert customer_texts(tg)[-1].startswith("You're now connected to a human agent.")


async def test_a_later_handoff_of_the_same_ticket_reuses_its_topic(
    harness: ShopHarness, tg: FakeTelegram, thread: int
) -> None:
    await harness.press(ALICE, "End chat with agent")
    assert harness.state(ALICE) == "menu.main"
    assert tg.texts(GROUP_ID, thread)[-1] == "客户结束了人工会话,回到了退款助手。"

    await harness.process(harness.updates.text(ALICE, "人工"))  # the word works too
    assert harness.state(ALICE) == "handoff.with_agent"
    assert len(tg.of("createForumTopic")) == 1
    assert case_thread(harness) == thread
    assert len([p for p in tg.to(GROUP_ID, "sendMessage") if buttons(p)]) == 2
    assert "客户:人工" in str(card(tg, thread)["text"])


# -- relaying both ways -----------------------------------------------------------------------


async def test_messages_go_both_ways_signed_and_the_bot_stays_quiet(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    up = harness.updates
    to_customer = len(customer_texts(tg))

    said = up.text(ALICE, "My video benefits were downgraded")
    await harness.process(said)
    await harness.process(up.photo(ALICE, "downgrade"))
    await harness.process(up.photo(ALICE, "album-1", album="a1"))
    await harness.process(up.photo(ALICE, "album-2", album="a1"))
    await harness.flush_albums()
    # the bot said nothing; every message was copied into the case's topic, in order
    assert len(customer_texts(tg)) == to_customer
    assert harness.state(ALICE) == "handoff.with_agent"
    copies = tg.to(GROUP_ID, "copyMessage")
    assert [(c["from_chat_id"], c["message_thread_id"]) for c in copies] == [(ALICE.id, thread)] * 4
    assert copies[0]["message_id"] == said["message"]["message_id"]
    assert copies[2]["message_id"] < copies[3]["message_id"]

    await agents.say(AGENT1, "> 您好,我来帮您核实。", thread)
    assert customer_texts(tg)[-2:] == [
        "王五 from customer service has joined and will help you here.",
        "您好,我来帮您核实。\n\n— 王五, customer service",
    ]
    await agents.photo(AGENT2, "how-to", thread, caption=">这样截图")
    (copied,) = tg.to(ALICE.id, "copyMessage")
    assert copied["from_chat_id"] == GROUP_ID
    assert copied["caption"] == "这样截图\n\n— 赵六, customer service"
    assert len(customer_texts(tg)) == to_customer + 2  # one person joined, told once

    # neither a stranger in the topic nor an agent's talk outside any case reaches the customer
    await agents.say(STRANGER, "这个客户是谁?", thread)
    await agents.say(AGENT1, "大家好")  # the group's General topic
    assert len(customer_texts(tg)) == to_customer + 2
    assert len(tg.to(ALICE.id, "copyMessage")) == 1
    assert harness.state(ALICE) == "handoff.with_agent"


async def test_an_agent_writing_to_a_customer_who_left_brings_the_person_back(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await harness.press(ALICE, "End chat with agent")
    await agents.say(AGENT1, "> 还在吗?截图我收到了。", thread)
    assert harness.state(ALICE) == "handoff.with_agent"
    assert "王五 from customer service has joined" in "\n".join(customer_texts(tg)[-3:])
    assert customer_texts(tg)[-1] == "还在吗?截图我收到了。\n\n— 王五, customer service"
    await harness.process(harness.updates.text(ALICE, "yes, still here"))
    assert tg.to(GROUP_ID, "copyMessage")[-1]["message_thread_id"] == thread


# -- the agents' actions ----------------------------------------------------------------------


async def test_claim_ask_for_more_supplement_approve_and_mark_refunded_twice(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    up = harness.updates

    await agents.press(AGENT1, "认领")
    claimed = ticket(harness, NO)
    assert (claimed.status, claimed.assignee) == (TicketStatus.IN_REVIEW, AGENT1.id)
    assert (events(harness, NO)[-1].kind, events(harness, NO)[-1].actor) == ("claim", "agent:9001")
    assert tg.answers()[-1] == f"✅ 王五 认领了 {NO}。"
    assert tg.texts(GROUP_ID, thread)[-1] == f"✅ 王五 认领了 {NO}。"
    assert customer_texts(tg)[-1] == (
        f"王五 from customer service is now handling your request {NO}."
    )

    await agents.say(AGENT2, "/need 请上传会员权益页面的截图", thread)
    assert ticket(harness, NO).status is TicketStatus.NEEDS_INFO
    assert events(harness, NO)[-1].data["request"] == "请上传会员权益页面的截图"
    assert harness.state(ALICE) == "supplement.upload"
    assert (
        "the agent asks you to add documents:\n请上传会员权益页面的截图" in customer_texts(tg)[-1]
    )
    assert tg.texts(GROUP_ID, thread)[-1] == (
        f"✅ 赵六 请客户补充材料({NO}):请上传会员权益页面的截图\n"
        "⚠️ 客户用的是英文,你写的不是:客户会原样收到。"
    )

    await harness.process(up.photo(ALICE, "benefits-page"))
    await harness.press(ALICE, "Done uploading")
    assert ticket(harness, NO).status is TicketStatus.IN_REVIEW
    assert tg.texts(GROUP_ID, thread)[-1] == "📎 客户补充了材料(1 份)"
    assert tg.to(GROUP_ID, "sendPhoto")[-1]["photo"] == "benefits-page"

    await agents.say(AGENT1, "/approve 500", thread)
    assert tg.texts(GROUP_ID, thread)[-1] == "金额超过了实付金额减已退款的上限。(上限 ¥198.00)"
    assert ticket(harness, NO).status is TicketStatus.IN_REVIEW
    assert ledger(harness) == []

    await agents.say(AGENT1, "/approve 91.67", thread)
    approved = ticket(harness, NO)
    assert (approved.status, approved.approved_fen) == (TicketStatus.APPROVED, 9167)
    (entry,) = ledger(harness)
    assert (entry.idempotency_key, entry.amount_fen, entry.state) == (
        f"{NO}/payout/0",
        9167,
        RefundState.PENDING,
    )
    assert customer_texts(tg)[-1] == (
        f"Request {NO} is approved: ¥91.67 will go back to your original payment method "
        "by 2026-11-27."
    )

    await agents.say(AGENT2, "/refunded", thread)
    (paid,) = ledger(harness)
    assert (paid.idempotency_key, paid.state) == (f"{NO}/payout/0", RefundState.PAID)
    assert ticket(harness, NO).status is TicketStatus.REFUNDED
    mark, asked = events(harness, NO)[-2:]
    assert (mark.kind, mark.actor) == ("mark_refunded", "agent:9002")
    assert mark.data == {"idempotency_key": f"{NO}/payout/0", "amount_fen": 9167}
    assert (asked.kind, asked.actor) == ("rating_asked", "system")  # the ticket ended
    told = len(customer_texts(tg))
    assert customer_texts(tg)[-2].startswith("The refund of ¥91.67 for request")
    assert customer_texts(tg)[-1].startswith(f"Your request {NO} is done.")

    # a second mark does nothing, and says so
    await agents.say(AGENT1, "/refunded", thread)
    assert tg.texts(GROUP_ID, thread)[-1] == f"{NO} 已经标记过退款,这次没有重复记账。"
    assert len(ledger(harness)) == 1 and ledger(harness)[0].state is RefundState.PAID
    assert [e.kind for e in events(harness, NO)].count("mark_refunded") == 1
    assert len(customer_texts(tg)) == told


async def test_reject_needs_a_reason_tells_the_customer_and_the_appeal_reopens_the_topic(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await agents.press(AGENT1, "驳回")  # the standard reasons to pick from; nothing moves yet
    assert tg.answers()[-1].startswith("选一个驳回理由")
    assert ticket(harness, NO).status is TicketStatus.SUBMITTED

    await agents.say(AGENT1, "/reject 截图看不出权益缺失", thread)
    assert ticket(harness, NO).status is TicketStatus.REJECTED
    assert customer_texts(tg)[-1] == (
        f"Request {NO} was not approved. Reason: 截图看不出权益缺失. "
        "You can appeal once under “My requests”."
    )

    await agents.say(AGENT1, "/return", thread)
    assert harness.state(ALICE) == "menu.main"
    assert "The chat with the agent has ended." in "\n".join(customer_texts(tg)[-2:])
    assert events(harness, NO)[-1].kind == "handoff_returned"
    assert tg.texts(GROUP_ID, thread)[-1] == "✅ 王五 把会话交还给了退款助手。"

    # the customer appeals: the case comes back to the same topic with a fresh card
    await harness.process(harness.updates.command(ALICE, "status"))
    for label in (NO, "Appeal", "Start appeal"):
        await harness.press(ALICE, label)
    await harness.process(harness.updates.photo(ALICE, "appeal-proof"))
    await harness.press(ALICE, "Submit appeal")
    assert ticket(harness, NO).status is TicketStatus.APPEALED
    assert len(tg.of("createForumTopic")) == 1
    appeal_card = str(card(tg, thread)["text"])
    assert appeal_card.startswith("🆘 客户提交了申诉,请复核")
    assert "申诉审核中" in appeal_card
    assert [p["photo"] for p in tg.to(GROUP_ID, "sendPhoto")][-2:] == [
        "evidence-1",
        "appeal-proof",
    ]
    assert harness.state(ALICE) == "status.detail"  # an appeal is reviewed, not a live chat


async def test_return_is_refused_when_the_customer_is_not_with_a_person(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await harness.press(ALICE, "End chat with agent")
    before = len(events(harness, NO))
    await agents.press(AGENT1, "交还机器人")
    assert tg.answers()[-1] == "客户现在没有在和人工客服对话。"
    assert len(events(harness, NO)) == before
    assert harness.state(ALICE) == "menu.main"
    assert thread == case_thread(harness)


# -- who may act, and when --------------------------------------------------------------------


async def test_non_agents_and_agents_outside_the_agent_chat_are_refused_and_nothing_changes(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    up = harness.updates
    before = (ticket(harness, NO), len(events(harness, NO)), len(customer_texts(tg)))
    approve = f"d:ap:{NO}"

    await agents.press(STRANGER, "通过")
    assert tg.answers()[-1] == "仅限客服操作。"
    await agents.say(STRANGER, "/approve", thread)
    assert tg.texts(GROUP_ID, thread)[-1] == "仅限客服操作。"

    await agents.press(AGENT1, "通过", chat=OTHER_GROUP, data=approve)
    assert tg.answers()[-1] == "请在客服群里操作。"
    await agents.press(AGENT1, "通过", chat=AGENT1.private_chat(), data=approve)
    assert tg.answers()[-1] == "请在客服群里操作。"
    await harness.process(up.message(AGENT1, text="/approve 10", entities=_command(8)))
    assert tg.texts(AGENT1.id)[-1] == "请在客服群里操作。"
    await agents.say(AGENT1, "/approve 10", chat=OTHER_GROUP)
    assert tg.texts(OTHER_GROUP["id"]) == ["请在客服群里操作。"]
    await agents.say(STRANGER, "/approve 10", chat=OTHER_GROUP)  # not an agent: silence
    assert tg.texts(OTHER_GROUP["id"]) == ["请在客服群里操作。"]

    assert (ticket(harness, NO), len(events(harness, NO)), len(customer_texts(tg))) == before
    assert ledger(harness) == []
    # the agent's private /approve did not become a customer conversation either
    assert harness.engine_app.engine.conversation(_private(AGENT1.id)) is None


async def test_a_stale_button_gets_a_polite_answer_and_changes_nothing(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await agents.say(AGENT1, "/approve", thread)  # the amount asked for: ¥198.00
    approved = ticket(harness, NO)
    assert approved.approved_fen == 19800

    for label in ("认领", "通过", "要补充材料"):
        await agents.press(AGENT2, label)  # the card shown before the approval
        assert tg.answers()[-1] == (f"{NO} 现在是「已通过,待退款」,这个操作已不可用,什么也没有改。")
    assert ticket(harness, NO) == approved
    assert len(ledger(harness)) == 1


async def test_the_same_desk_update_twice_has_effect_once(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    data, message_id = agents.button("认领")
    press = harness.updates.press(AGENT1, data, message_id=message_id, chat=FORUM)
    await harness.process(press)
    await harness.process(press)  # Telegram delivers it again
    assert [e.kind for e in events(harness, NO)].count("claim") == 1
    said = harness.updates.text(AGENT1, "> 请稍等", FORUM, thread=thread)
    await harness.process(said)
    await harness.process(said)
    assert customer_texts(tg).count("请稍等\n\n— 王五, customer service") == 1


# -- deadlines --------------------------------------------------------------------------------


async def test_an_overdue_review_is_announced_once_even_across_a_restart(
    config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    first = await ShopHarness(config, clock, tg).start()
    try:
        await file_ticket(first)  # review due 2026-11-27 (3 working days)
        assert first.bot is not None
        desk = first.bot.adapter.desk
        await desk.check_deadlines(first.application.bot)
        assert tg.texts(GROUP_ID) == []

        clock.set(at("2026-11-30 09:00"))  # Monday after
        await desk.check_deadlines(first.application.bot)
        await desk.check_deadlines(first.application.bot)
        announced = [p for p in tg.to(GROUP_ID, "sendMessage")]
        assert [p["text"] for p in announced] == [
            f"⏰ 审核超时:{NO} · 优先级 普通 · 截止 2026-11-27 · 处理人 未认领"
        ]
        assert "message_thread_id" not in announced[0]  # the group's General topic
        assert buttons(announced[0]) == [(f"打开 {NO}", f"d:op:{NO}")]
    finally:
        await first.stop()

    second = await ShopHarness(config, clock, tg).start(orders=())
    second.updates = Updates(
        clock.now, first_id=9000, tg=tg
    )  # Telegram's update ids go on after a restart
    try:
        (job,) = second.application.job_queue.get_jobs_by_name("deadlines")
        await job.run(second.application)  # as the repeating job fires after the restart
        clock.set(at("2026-12-01 09:00"))
        await job.run(second.application)
        assert len(tg.texts(GROUP_ID)) == 1
        assert [e.kind for e in events(second, NO)].count("overdue_announced") == 1

        # an agent opens it from the announcement: a topic and a card saying it is overdue
        await Agents(second, tg).press(AGENT1, f"打开 {NO}")
        assert tg.answers()[-1] == "已打开"
        text = str(card(tg, case_thread(second))["text"])
        assert text.startswith("🆘 从待处理队列打开")
        assert "⏰ 审核截止 2026-11-27 · 到账 通过后 1-3 个工作日 · ⚠️已超时" in text
    finally:
        await second.stop()


async def test_an_overdue_payout_opens_the_case_with_priority_and_offers_the_customer_a_person(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, clock: FixedClock
) -> None:
    await file_ticket(harness)
    await agents.say(AGENT1, "/queue")
    await agents.press(AGENT1, f"打开 {NO}")
    thread = case_thread(harness)
    await agents.say(AGENT1, "/approve", thread)
    assert ticket(harness, NO).payout_due is not None

    clock.set(at("2026-11-30 09:00"))  # paid back by 2026-11-27 (WeChat Pay: 3 working days)
    await desk_of(harness).check_deadlines(harness.application.bot)
    await desk_of(harness).check_deadlines(harness.application.bot)
    assert [e.kind for e in events(harness, NO)].count("payout_overdue") == 1
    offer = [p for p in tg.sent(ALICE.id) if "past its promised date" in p["text"]]
    assert len(offer) == 1
    assert offer[0]["text"] == (
        f"The refund for request {NO} is past its promised date (2026-11-27). We have asked an "
        "agent to handle it first; tap “Talk to an agent” to talk to them now."
    )
    prompt = tg.sent(ALICE.id)[-1]
    assert "Talk to an agent" in [label for label, _ in buttons(prompt)]
    overdue_card = str(card(tg, thread)["text"])
    assert overdue_card.startswith("🆘 ⚠️ 退款超时,请优先处理")
    assert "· ⚠️已超时" in overdue_card
    assert [label for label, _ in buttons(card(tg, thread))] == [
        "已退款",
        "标准回复…",
        "交还机器人",
        "完整记录",
    ]

    # the customer takes the offer: the person they reach is on that ticket's case
    await harness.press(ALICE, "Talk to an agent")
    assert harness.state(ALICE) == "handoff.with_agent"
    assert str(card(tg, thread)["text"]).startswith("🆘 ⚠️ 退款超时,请优先处理")
    assert len(tg.of("createForumTopic")) == 1
    await harness.process(harness.updates.text(ALICE, "where is my money?"))
    assert tg.to(GROUP_ID, "copyMessage")[-1]["message_thread_id"] == thread


# -- a group without topics -------------------------------------------------------------------


async def test_a_group_without_topics_keeps_each_case_in_the_replies_to_its_card(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents
) -> None:
    tg.fail("createForumTopic", NOT_A_FORUM)
    await file_ticket(harness)
    await harness.process(harness.updates.command(ALICE, "agent"))
    shown = card(tg, None)
    card_id = tg.result_of(shown)
    assert case_of(harness, NO).thread_id is None
    assert tg.to(GROUP_ID, "sendPhoto")[-1]["reply_parameters"]["message_id"] == card_id

    said = harness.updates.text(ALICE, "anyone there?")
    await harness.process(said)
    (copied,) = tg.to(GROUP_ID, "copyMessage")
    assert copied["reply_parameters"]["message_id"] == card_id
    assert "message_thread_id" not in copied
    copy_id = next(c.result["message_id"] for c in tg.calls if c.method == "copyMessage")

    # an agent answers by replying to the customer's copied message, or to the card
    await agents.say(AGENT1, ">在的,请稍等", chat=PLAIN_GROUP, reply_to=copy_id)
    assert customer_texts(tg)[-1] == "在的,请稍等\n\n— 王五, customer service"
    await agents.say(AGENT2, "/approve 100", chat=PLAIN_GROUP, reply_to=card_id)
    assert ticket(harness, NO).approved_fen == 10000
    confirmation = tg.to(GROUP_ID, "sendMessage")[-1]
    assert confirmation["text"] == f"✅ 赵六 通过了 {NO}:退款 ¥100.00,2026-11-27 前到账。"
    assert confirmation["reply_parameters"]["message_id"] == card_id

    # talk in the group that replies to no case stays in the group; a command there is refused
    sent = len(customer_texts(tg))
    await agents.say(AGENT1, "午饭吃什么", chat=PLAIN_GROUP)
    await agents.say(AGENT1, "/claim", chat=PLAIN_GROUP)
    assert len(customer_texts(tg)) == sent
    assert tg.texts(GROUP_ID)[-1].startswith("请在售后单的话题里使用这个命令")
    await agents.press(AGENT1, "认领", chat=PLAIN_GROUP)  # the card's button, after approval
    assert tg.answers()[-1].endswith("这个操作已不可用,什么也没有改。")

    # back to the bot and a new handoff: a fresh card in the group, no second try at a topic
    await agents.say(AGENT1, "/return", chat=PLAIN_GROUP, reply_to=card_id)
    assert harness.state(ALICE) == "menu.main"
    await harness.process(harness.updates.command(ALICE, "agent"))
    assert len(tg.of("createForumTopic")) == 1
    fresh = card(tg, None)
    assert tg.result_of(fresh) != card_id and "已通过,待退款" in str(fresh["text"])
    await harness.process(harness.updates.text(ALICE, "thanks"))
    assert tg.to(GROUP_ID, "copyMessage")[-1]["reply_parameters"]["message_id"] == (
        tg.result_of(fresh)
    )


async def test_a_case_whose_topic_was_deleted_gets_a_new_one(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    old = thread
    await agents.say(AGENT1, "/queue")
    tg.fail("sendMessage", Failure(400, "Bad Request: message thread not found"))
    await agents.press(AGENT1, f"打开 {NO}")
    new = case_thread(harness)
    assert new != old and [t["message_thread_id"] for t in tg.topics] == [old, new]
    assert str(card(tg, new)["text"]).startswith("🆘 客户要求转人工")  # why it was opened
    await harness.process(harness.updates.text(ALICE, "hello?"))
    assert tg.to(GROUP_ID, "copyMessage")[-1]["message_thread_id"] == new


async def test_a_card_that_could_not_be_posted_is_posted_by_the_job(
    harness: ShopHarness, tg: FakeTelegram
) -> None:
    tg.fail("createForumTopic", Failure.server_error(502))
    await file_ticket(harness)
    await harness.process(harness.updates.command(ALICE, "agent"))
    assert harness.state(ALICE) == "handoff.with_agent"  # the customer's turn stands
    assert case_of(harness, NO).card_due
    assert not [p for p in tg.to(GROUP_ID, "sendMessage") if buttons(p)]

    await desk_of(harness).check_deadlines(harness.application.bot)
    assert not case_of(harness, NO).card_due
    assert str(card(tg, case_thread(harness))["text"]).startswith("🆘 客户要求转人工")


# -- the queue --------------------------------------------------------------------------------


async def test_the_queue_lists_unassigned_first_then_by_priority_and_deadline_with_holders(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, clock: FixedClock
) -> None:
    await file_ticket(harness)  # normal, review due 2026-11-27
    late, high, fast = file_more(harness.engine_app, clock)
    await agents.say(AGENT1, "/queue")
    await agents.press(AGENT1, f"打开 {high}")
    await agents.press(AGENT2, "认领")

    await agents.say(AGENT1, "/queue")
    listing = tg.texts(GROUP_ID)[-1]
    assert listing.split("\n") == [
        "待处理售后单 4 张(超时、未认领的在前,再按优先级、审核截止日):",
        f"1. {fast} · 快速 · 已提交 · 截止 2026-11-25 · 未认领",
        f"2. {NO} · 普通 · 已提交 · 截止 2026-11-27 · 未认领",
        f"3. {late} · 普通 · 已提交 · 截止 2026-11-30 · 未认领",
        f"4. {high} · 高 · 审核中 · 截止 2026-11-25 · 赵六",
    ]
    assert [label for label, _ in buttons(tg.to(GROUP_ID, "sendMessage")[-1])] == [
        f"打开 {n}" for n in (fast, NO, late, high)
    ]


# -- helpers ----------------------------------------------------------------------------------


def desk_of(h: ShopHarness) -> TelegramDesk:
    assert h.bot is not None
    return h.bot.adapter.desk


def _command(length: int) -> list[dict[str, object]]:
    return [{"type": "bot_command", "offset": 0, "length": length}]


def _private(user_id: int) -> ConversationKey:
    return conversation_key(user_id)


async def test_a_supplemented_file_telegram_refuses_does_not_hold_back_the_others(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    up = harness.updates
    await agents.say(AGENT1, "/need 请上传两张截图", thread)
    await harness.process(up.photo(ALICE, "first", album="a1"))
    await harness.process(up.photo(ALICE, "second", album="a1"))
    await harness.bot.adapter.flush_albums(harness.application.bot)
    tg.fail("sendPhoto", Failure(400, "Bad Request: wrong file identifier/HTTP URL specified"))
    await harness.press(ALICE, "Done uploading")
    texts = tg.texts(GROUP_ID, thread)
    assert texts[-2] == "📎 客户补充了材料(2 份)"
    # the first of the two was refused: the agents are told which, and why
    assert texts[-1].startswith("⚠️ 这份凭证没能转到这里(凭证 1/2):Wrong file identifier")
    assert tg.to(GROUP_ID, "sendPhoto")[-1]["photo"] == "second"  # the other still came


async def test_each_file_is_re_sent_the_way_it_came(harness: ShopHarness, tg: FakeTelegram) -> None:
    """A screenshot sent as a file is a photo to the rules but a document to Telegram: the desk
    re-sends it with sendDocument (sendPhoto is refused for a document's file_id)."""
    await harness.to_evidence(ALICE)
    up = harness.updates
    await harness.process(up.document(ALICE, "shot", "截图.png", "image/png"))
    await harness.process(up.photo(ALICE, "snap"))
    for label in ("Done uploading", "Full amount", "Submit"):
        await harness.press(ALICE, label)
    await hand_off(harness)
    assert [p["document"] for p in tg.to(GROUP_ID, "sendDocument")] == ["shot"]
    assert [p["photo"] for p in tg.to(GROUP_ID, "sendPhoto")] == ["snap"]
    assert tg.refused == []
    with harness.engine_app.store.unit_of_work() as uow:
        stored = uow.evidence_of(NO)
    assert [(e.kind.value, e.sent_as) for e in stored] == [
        ("photo", SentAs.DOCUMENT),
        ("photo", SentAs.PHOTO),
    ]
