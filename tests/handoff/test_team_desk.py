"""The agent desk for a team (issue 15) through python-telegram-bot on the fake Bot API: notes
that no path sends out, the card edited after every action, a lost topic recreated with the
customer's message, /history, duty and the mention, block; and the desk's pure helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bot.calendar import WorkingCalendar
from bot.clock import SHANGHAI
from bot.config import BusinessHours, Config
from bot.dialogue._care import opening
from bot.domain import TicketStatus
from bot.handoff import addressed, written_in
from bot.testing import FakeTelegram
from tests.handoff.desk import (
    AGENT1,
    AGENT2,
    FORUM,
    GROUP_ID,
    Agents,
    case_of,
    desk_config,
    events,
    file_ticket,
    ticket,
)
from tests.handoff.test_telegram_desk import NO, card, case_thread, hand_off
from tests.telegram.support import ALICE, ShopHarness

# what reaches the customer: every message and copy the bot sends to their private chat
TO_CUSTOMER = ("sendMessage", "copyMessage", "sendPhoto", "sendDocument", "sendMediaGroup")


@pytest.fixture
async def thread(harness: ShopHarness) -> int:
    await file_ticket(harness)
    return await hand_off(harness)


def sent_to_customer(tg: FakeTelegram) -> int:
    return sum(len(tg.to(ALICE.id, method)) for method in TO_CUSTOMER)


def notes(h: ShopHarness) -> list[str]:
    case = case_of(h, NO)
    assert case.case_id is not None
    with h.engine_app.store.unit_of_work() as uow:
        return [e.text for e in uow.case_entries(case.case_id) if e.kind == "note"]


# -- notes never leak -------------------------------------------------------------------------


async def test_no_path_sends_a_note_to_the_customer(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    up = harness.updates
    await harness.process(up.text(ALICE, "hello"))  # copied into the topic
    copy_id = next(c.result["message_id"] for c in tg.calls if c.method == "copyMessage")
    before = sent_to_customer(tg)
    # plain text: the slip of issue 15
    first = up.text(AGENT1, "内部备注:这个客户上个月也退过", FORUM, thread=thread)
    await harness.process(first)
    # /note, even with the customer's prefix inside
    await agents.say(AGENT2, "/note > 这句也只是备注", thread)
    # a reply to a note (or to the customer's copied message) without the prefix
    await agents.say(AGENT1, "同意", thread, reply_to=first["message"]["message_id"])
    await agents.say(AGENT2, "这句是回复客户消息的讨论", thread, reply_to=copy_id)
    # a photo without a caption, a document with a caption that is not addressed
    await agents.photo(AGENT1, "internal-1", thread)
    await harness.process(
        up.document(AGENT1, "后台.pdf", caption="后台截图", chat=FORUM, thread=thread)
    )
    # an album: neither part addressed
    for name in ("album-a", "album-b"):
        await harness.process(
            up.photo(AGENT2, name, album="agent-album", chat=FORUM, thread=thread)
        )
    # a forwarded message, whatever it starts with (a copy of someone else's file or text)
    await harness.process(
        up.message(
            AGENT1, FORUM, thread=thread, text="> 客户资料", forward_origin=up.origin(AGENT2)
        )
    )
    # a sticker cannot carry a prefix
    await harness.process(up.message(AGENT1, FORUM, thread=thread, sticker=_sticker()))
    # an edit of a note into the customer's prefix changes nothing
    noted = up.text(AGENT1, "先别回复", FORUM, thread=thread)
    await harness.process(noted)
    edited = up.text(
        AGENT1,
        "> 现在回复",
        FORUM,
        thread=thread,
        message_id=noted["message"]["message_id"],
        edit_date=noted["message"]["date"] + 5,
    )
    await harness.process({"update_id": edited["update_id"], "edited_message": edited["message"]})

    assert sent_to_customer(tg) == before
    assert harness.state(ALICE) == "handoff.with_agent"
    kept = notes(harness)
    assert kept[:2] == ["内部备注:这个客户上个月也退过", "> 这句也只是备注"]
    assert "先别回复" in kept and "> 现在回复" not in kept
    # each note got the ✍ reaction on the agent's own message
    reactions = tg.of("setMessageReaction")
    assert len(reactions) == len(kept)
    assert {r["reaction"][0]["emoji"] for r in reactions} == {"✍"}
    # the card shows them from its next edit (an action), not one edit per note
    assert not tg.of("editMessageText")
    await agents.say(AGENT1, "/claim", thread)
    shown = card(tg, thread)
    edits = [p for p in tg.of("editMessageText") if p["message_id"] == tg.result_of(shown)]
    assert "📝 内部备注" in str(edits[-1]["text"]) and "先别回复" in str(edits[-1]["text"])


async def test_only_what_starts_with_the_prefix_reaches_the_customer_and_the_agent_sees_it(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await agents.say(AGENT1, "＞ 您好,我来核实", thread)  # the full-width prefix works too
    assert tg.texts(ALICE.id)[-1] == "您好,我来核实\n\n— 王五, customer service"
    assert tg.texts(GROUP_ID, thread)[-1].startswith("📤 已发给客户。")
    assert "⚠️ 客户用的是英文" in tg.texts(GROUP_ID, thread)[-1]  # Chinese to an English reader
    await agents.say(AGENT1, "> Hello, checking now", thread)
    assert tg.texts(GROUP_ID, thread)[-1] == "📤 已发给客户。"
    await agents.photo(AGENT2, "how-to", thread, caption=">这样截图")
    (copied,) = tg.to(ALICE.id, "copyMessage")
    assert copied["caption"] == "这样截图\n\n— 赵六, customer service"
    await agents.say(AGENT1, ">", thread)  # nothing after the prefix: kept as a note
    assert notes(harness) == [">"]


# -- the card stays true ------------------------------------------------------------------------


async def test_the_card_is_edited_after_every_action_and_a_stale_button_answers_politely(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    shown = card(tg, thread)
    card_id = tg.result_of(shown)
    await agents.say(AGENT1, "/approve 91.67", thread)
    edited = [p for p in tg.of("editMessageText") if p["message_id"] == card_id][-1]
    text = str(edited["text"])
    assert "已通过,待退款" in text and "¥91.67" in text and "🕘 最近" in text
    labels = [b["text"] for row in edited["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["已退款", "标准回复…", "交还机器人", "完整记录"]
    # the old keyboard's 驳回 (as a client that has not refreshed still shows it)
    await harness.process(
        harness.updates.press(AGENT2, f"d:rj:{NO}:material_unclear", message_id=card_id, chat=FORUM)
    )
    assert tg.answers()[-1] == f"{NO} 现在是「已通过,待退款」,这个操作已不可用,什么也没有改。"
    assert ticket(harness, NO).status is TicketStatus.APPROVED


async def test_a_deleted_topic_is_recreated_and_the_customers_message_is_not_lost(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    tg.deleted_topics.add((GROUP_ID, thread))
    said = harness.updates.text(ALICE, "hello? anyone?")
    await harness.process(said)
    new = case_thread(harness)
    assert new != thread
    assert str(card(tg, new)["text"]).startswith("🆘 客户要求转人工")
    copy = tg.to(GROUP_ID, "copyMessage")[-1]
    assert (copy["message_thread_id"], copy["message_id"]) == (new, said["message"]["message_id"])
    await agents.say(AGENT1, "> 在的", new)
    assert tg.texts(ALICE.id)[-1].startswith("在的")


async def test_history_lists_events_notes_messages_evidence_and_who_did_what(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await harness.process(harness.updates.text(ALICE, "my benefits are gone"))
    await agents.say(AGENT1, "/claim", thread)
    await agents.say(AGENT2, "查一下会员后台", thread)
    await agents.say(AGENT1, "> We are checking", thread)
    await agents.say(AGENT1, "/approve 91.67", thread)
    await agents.say(AGENT2, "/history", thread)
    history = tg.texts(GROUP_ID, thread)[-1].split("\n")
    assert history[0].startswith(f"🗂 {NO} 的完整记录")
    body = "\n".join(history[1:])
    for line in (
        "客户 · 提交申请 → 已提交 · ¥198.00",
        "客户 · 📎 凭证(photo)",
        "客户 · 💬 客户:my benefits are gone",
        "王五 · 认领 → 审核中 · 王五",
        "赵六 · 📝 备注:查一下会员后台",
        "王五 · 📤 发给客户:We are checking",
        "王五 · 通过 → 已通过,待退款",
    ):
        assert line in body, (line, body)
    assert history[1].startswith("11-24 10:00 · ")


# -- who takes a case -------------------------------------------------------------------------


async def test_a_new_case_goes_round_robin_to_agents_on_duty_and_mentions_them(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents
) -> None:
    await agents.say(AGENT1, "/duty on")
    assert tg.texts(GROUP_ID)[-1] == "🟢 王五 开始值班。值班中:王五"
    await agents.say(AGENT2, "/duty on")
    await file_ticket(harness)
    await hand_off(harness)
    assert ticket(harness, NO).assignee == AGENT1.id  # never assigned before: by id
    mention = [p for p in tg.to(GROUP_ID, "sendMessage") if p.get("parse_mode") == "HTML"][-1]
    assert mention["text"].startswith(f'👉 <a href="tg://user?id={AGENT1.id}">王五</a>')
    assert events(harness, NO)[-1].actor == "system"
    # /claim overrides the pick
    await agents.say(AGENT2, "/claim", case_thread(harness))
    assert ticket(harness, NO).assignee == AGENT2.id
    await agents.say(AGENT1, "/duty off")
    assert tg.texts(GROUP_ID)[-1] == "⚪ 王五 下班了。值班中:赵六"


async def test_nobody_on_duty_leaves_the_case_in_the_queue(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents
) -> None:
    await file_ticket(harness)
    await hand_off(harness)
    assert ticket(harness, NO).assignee is None
    assert not [p for p in tg.to(GROUP_ID, "sendMessage") if p.get("parse_mode") == "HTML"]


# -- block ------------------------------------------------------------------------------------


async def test_block_and_unblock_are_audited_and_the_customer_gets_a_fixed_answer(
    harness: ShopHarness, tg: FakeTelegram, agents: Agents, thread: int
) -> None:
    await agents.say(AGENT1, "/block 辱骂客服", thread)
    assert harness.state(ALICE) == "menu.main"
    assert events(harness, NO)[-1].kind == "blocked"
    assert events(harness, NO)[-1].data == {"reason": "辱骂客服"}
    await harness.process(harness.updates.command(ALICE, "agent"))
    assert tg.texts(ALICE.id)[-2].startswith("Sorry, this account can't start new requests")
    assert harness.state(ALICE) == "menu.main"
    assert "⛔ 已拉黑:辱骂客服" in str(tg.of("editMessageText")[-1]["text"])
    await agents.say(AGENT1, "/unblock", thread)
    await agents.say(AGENT1, "/unblock", thread)
    assert tg.texts(GROUP_ID, thread)[-1] == "这位客户没有被拉黑。"
    assert [e.kind for e in events(harness, NO)][-2:] == ["blocked", "unblocked"]


# -- the pure helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("> hi", "hi"),
        ("  ＞ 您好 ", "您好"),
        (">", ""),
        ("hi > there", None),
        ("内部:>客户", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_leading_prefix_addresses_the_customer(text: str | None, said: str | None) -> None:
    assert addressed(text) == said


def test_the_script_of_a_text_tells_its_language() -> None:
    assert written_in("请稍等") == "zh-CN"
    assert written_in("OK 请稍等") == "zh-CN"
    assert written_in("Please wait") == "en"
    assert written_in("123 ✅") is None


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        ("2026-11-24 10:00", None),  # Tuesday, open
        ("2026-11-24 08:30", "2026-11-24 09:00"),
        ("2026-11-24 18:00", "2026-11-25 09:00"),
        ("2026-11-27 19:30", "2026-11-30 09:00"),  # Friday evening: Monday
        ("2026-09-30 20:00", "2026-10-08 09:00"),  # National Day week
    ],
)
def test_the_next_opening_follows_the_working_day_calendar(now: str, opens: str | None) -> None:
    moment = datetime.strptime(now, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)
    found = opening(moment, BusinessHours(), WorkingCalendar())
    assert (found.strftime("%Y-%m-%d %H:%M") if found else None) == opens


def test_business_hours_must_end_after_they_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="end must be after start"):
        BusinessHours.model_validate({"start": "18:00", "end": "09:00"})
    assert isinstance(desk_config(tmp_path), Config)


def _sticker() -> dict[str, object]:
    return {
        "file_id": "st-1",
        "file_unique_id": "u-st-1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
