"""我的售后 (status), 补充材料 (supplement), 申诉 (appeal) and the escalation route."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.domain import Ticket, TicketStatus
from bot.engine import HandoffRequested, Kind, TicketAppealed, TicketSupplemented
from tests.engine.conftest import Chat, agent_moves, another_chat, apply_for


@pytest.fixture
def linked(chat: Chat) -> Chat:
    chat.link()
    return chat


@pytest.fixture
def disputed(linked: Chat) -> Ticket:
    """C1's activation dispute, in review, with one photo."""
    return apply_for(linked, "知行", "七天无理由", "我没有真正使用", photos=1)


def open_ticket(chat: Chat, ticket_no: str) -> None:
    chat.command("status")
    chat.press(ticket_no)
    assert chat.state == "status.detail", chat.text


def test_no_tickets_yet(linked: Chat) -> None:
    linked.press("我的售后")
    assert linked.state == "status.list"
    assert "你还没有售后单" in linked.text
    assert linked.buttons() == ["申请退款", "返回菜单"]


def test_the_list_is_newest_first_with_statuses(linked: Chat) -> None:
    fast = apply_for(linked, "星河", "七天无理由")
    review = apply_for(linked, "力健", "服务未达标", "商家失联", photos=1)
    linked.command("status")
    assert linked.state == "status.list"
    lines = linked.last.replies[-1].text.splitlines()[1:]
    assert lines == [f"{review.ticket_no} · 已提交", f"{fast.ticket_no} · 已通过,待退款"]
    assert linked.buttons()[:2] == [
        f"{review.ticket_no} · 已提交",
        f"{fast.ticket_no} · 已通过,待退款",
    ]


def test_the_detail_has_the_timeline_and_next_step(linked: Chat) -> None:
    fast = apply_for(linked, "星河", "七天无理由")
    open_ticket(linked, fast.ticket_no)
    text = linked.text
    assert f"售后单 {fast.ticket_no}" in text
    assert "状态:已通过,待退款" in text
    assert f"下一步:¥198.00 将在 {fast.payout_due} 前原路退回" in text
    assert "2026-11-24 10:00  提交申请,金额 ¥198.00" in text
    assert "2026-11-24 10:00  审核通过,退款 ¥198.00" in text
    assert "超时了,找客服" not in linked.buttons()
    linked.press("全部售后单")
    assert linked.state == "status.list"
    linked.press("返回菜单")
    assert linked.state == "menu.main"


def test_an_overdue_review_offers_an_agent(linked: Chat, clock: FixedClock) -> None:
    ticket = apply_for(linked, "力健", "服务未达标", "商家失联", photos=1)
    assert str(ticket.review_due) == "2026-11-25"
    clock.advance(timedelta(days=1))  # the last day of the review: not overdue yet
    open_ticket(linked, ticket.ticket_no)
    assert "超时了,找客服" not in linked.buttons()
    clock.advance(timedelta(days=1))
    linked.command("status")
    assert f"{ticket.ticket_no} · 已提交 · ⚠️已超时" in linked.text
    linked.press(ticket.ticket_no)
    assert linked.last.replies[0].key == "status.overdue"
    assert "已超过承诺时间" in linked.text
    assert linked.buttons()[0] == "超时了,找客服"
    result = linked.press("超时了,找客服")
    assert linked.state == "handoff.with_agent"
    assert any(isinstance(e, HandoffRequested) for e in result.effects)


def test_an_overdue_payout_offers_an_agent(linked: Chat, clock: FixedClock) -> None:
    fast = apply_for(linked, "星河", "七天无理由")
    assert fast.payout_due is not None
    clock.advance(timedelta(days=10))
    open_ticket(linked, fast.ticket_no)
    assert linked.last.replies[0].key == "status.overdue"
    assert "超时了,找客服" in linked.buttons()


def test_a_supplement_after_the_agent_asks_goes_back_to_review(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="请上传学习记录截图")
    open_ticket(linked, disputed.ticket_no)
    assert "状态:待补充材料" in linked.text
    assert "下一步:请补充材料:请上传学习记录截图" in linked.text
    linked.press("补充材料")
    assert linked.state == "supplement.upload"
    assert "请上传学习记录截图" in linked.text
    linked.press("上传完成")
    assert linked.state == "supplement.upload"
    assert linked.last.replies[0].key == "supplement.error.nothing_new"
    linked.photo("progress-zero")
    linked.type("我从来没有打开过课程")
    assert linked.last.replies[0].key == "supplement.note_saved"
    result = linked.press("上传完成")
    assert linked.state == "status.detail"
    assert linked.last.replies[0].key == "supplement.sent"
    assert "状态:审核中" in linked.text and "已补充材料" in linked.text
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.IN_REVIEW
    assert [e for e in result.effects if isinstance(e, TicketSupplemented)] == [
        TicketSupplemented(ticket.ticket_no, "in_review")
    ]
    with app.store.unit_of_work() as uow:
        files = [e.file_unique_id for e in uow.evidence_of(ticket.ticket_no)]
        supplement = [e for e in uow.events_of(ticket.ticket_no) if e.kind == "supplement"]
    assert "uid-progress-zero" in files
    assert supplement[0].data == {
        "files": 1,
        "note": "我从来没有打开过课程",
        "notes": ["我从来没有打开过课程"],
    }


def test_every_note_of_a_supplement_is_kept_whole_and_in_order(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="请说明情况")
    open_ticket(linked, disputed.ticket_no)
    linked.press("补充材料")
    long = "课程从未打开。" * 300  # 2,100 characters: nothing is cut
    linked.type("第一段:购买后一直没有使用")
    assert "已有 1 段" in linked.text
    linked.type(long)
    assert "已有 2 段" in linked.text
    linked.press("上传完成")
    (ticket,) = linked.tickets()
    with app.store.unit_of_work() as uow:
        (supplement,) = [e for e in uow.events_of(ticket.ticket_no) if e.kind == "supplement"]
    assert supplement.data["notes"] == ["第一段:购买后一直没有使用", long]
    assert supplement.data["note"] == f"第一段:购买后一直没有使用\n\n{long}"


def test_notes_past_the_limit_are_refused_with_a_reason_and_the_rest_kept(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="请说明情况")
    open_ticket(linked, disputed.ticket_no)
    linked.press("补充材料")
    limit = app.config.dialogue.max_notes
    for n in range(limit):
        linked.type(f"说明 {n}")
    linked.type("多出来的一段")
    assert linked.last.replies[0].key == "supplement.notes_full"
    assert f"最多可以写 {limit} 段" in linked.text
    linked.press("上传完成")
    (ticket,) = linked.tickets()
    with app.store.unit_of_work() as uow:
        (supplement,) = [e for e in uow.events_of(ticket.ticket_no) if e.kind == "supplement"]
    assert supplement.data["notes"] == [f"说明 {n}" for n in range(limit)]


def test_a_supplement_refuses_a_file_already_on_the_ticket(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="更多截图")
    open_ticket(linked, disputed.ticket_no)
    linked.press("补充材料")
    with app.store.unit_of_work() as uow:
        (already,) = uow.evidence_of(disputed.ticket_no)
    linked.photo(already.file_unique_id.removeprefix("uid-"))
    assert linked.last.replies[0].key == "evidence.error.duplicate"


def test_the_supplement_button_is_gone_once_answered(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="更多截图")
    open_ticket(linked, disputed.ticket_no)
    stale = linked.token("补充材料")
    linked.press("补充材料")
    linked.type("说明")
    linked.press("上传完成")
    result = linked.send(Kind.BUTTON, token=stale)
    assert result.button_answer is not None
    assert linked.state == "status.detail"
    assert "补充材料" not in linked.buttons()


def test_one_appeal_after_a_rejection(app: App, linked: Chat, disputed: Ticket) -> None:
    agent_moves(app, disputed.ticket_no, "reject", reason="后台显示有学习记录")
    open_ticket(linked, disputed.ticket_no)
    assert "状态:已驳回" in linked.text
    assert "已驳回:后台显示有学习记录。你可以申诉一次" in linked.text
    assert "投诉渠道" not in linked.buttons()
    linked.press("申诉")
    assert linked.state == "appeal.explain"
    assert "理由:后台显示有学习记录" in linked.text
    assert "《电子商务法》第四十九条第二款" in linked.text
    assert "申诉只有一次机会" in linked.text
    linked.press("开始申诉")
    assert linked.state == "appeal.upload"
    linked.press("提交申诉")
    assert linked.last.replies[0].key == "supplement.error.nothing_new"
    linked.photo("empty-history")
    result = linked.press("提交申诉")
    assert linked.state == "status.detail"
    assert linked.last.replies[0].key == "appeal.sent"
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.APPEALED and ticket.appeal_count == 1
    assert {type(e) for e in result.effects} >= {TicketAppealed, HandoffRequested}
    assert "申诉" not in linked.buttons()


def test_after_the_final_rejection_the_escalation_route(
    app: App, linked: Chat, disputed: Ticket, clock: FixedClock
) -> None:
    agent_moves(app, disputed.ticket_no, "reject", reason="有学习记录")
    open_ticket(linked, disputed.ticket_no)
    linked.press("申诉")
    linked.press("开始申诉")
    linked.photo("appeal-proof")
    linked.press("提交申诉")
    clock.advance(timedelta(hours=5))
    agent_moves(app, disputed.ticket_no, "reject", reason="仍有学习记录")
    open_ticket(linked, disputed.ticket_no)
    assert "申诉机会已用完" in linked.text
    assert "申诉" not in linked.buttons()
    assert "投诉渠道" in linked.buttons()
    linked.press("投诉渠道")
    assert linked.state == "status.escalation"
    text = linked.text
    assert "12315" in text and "消费者协会" in text
    assert "【投诉摘要】" in text
    assert f"售后单:{disputed.ticket_no}" in text
    assert "订单:C1 知行网课年卡" in text
    assert "实付 ¥599.00" in text and "金额 ¥599.00" in text
    assert "驳回理由:仍有学习记录" in text
    assert "提交申诉" in text  # the timeline
    # the decision's own basis, each article once; nothing that does not apply (CPL Art. 53)
    assert text.count("《电子商务法》第四十九条第二款") == 1
    assert text.count("第七条、第八条") == 1
    assert "《消费者权益保护法》第五十三条" not in text
    assert "- 照片 " in text and "- photo " not in text  # evidence kinds in the customer's words
    assert text.count("- 照片 ") == 2
    linked.press("返回")
    assert linked.state == "status.list"


def test_an_appeal_started_from_an_old_prompt_after_the_final_rejection_is_refused(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "reject", reason="不符合")
    open_ticket(linked, disputed.ticket_no)
    linked.press("申诉")
    linked.press("开始申诉")
    linked.type("我没有用过")
    linked.press("提交申诉")
    agent_moves(app, disputed.ticket_no, "reject", reason="仍不符合")
    # the customer reaches the appeal explanation again through a SYSTEM event (the desk's
    # "open ticket" link): the condition, not only the hidden button, stops a second appeal
    linked.send(Kind.SYSTEM, command="appeal")
    assert linked.state == "status.detail"
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.REJECTED and ticket.appeal_count == 1


def test_a_ticket_of_another_customer_is_never_shown(app: App, linked: Chat) -> None:
    mine = apply_for(linked, "星河", "七天无理由")
    other = Chat(app, user_id=2002)
    other.command("start")
    other.share_contact(phone="+8613900139000")
    other.command("status")
    assert "你还没有售后单" in other.text
    assert mine.ticket_no not in other.text


def test_a_supplement_for_a_ticket_that_moved_on_meanwhile_is_not_sent(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "request_info", request="更多截图")
    open_ticket(linked, disputed.ticket_no)
    linked.press("补充材料")
    linked.photo("late")
    agent_moves(app, disputed.ticket_no, "withdraw")  # withdrawn on the phone with an agent
    linked.press("上传完成")
    assert linked.state == "status.detail"
    assert linked.last.replies[0].key == "status.moved_on"
    assert "状态:已撤回" in linked.text
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.WITHDRAWN
    with app.store.unit_of_work() as uow:
        assert "uid-late" not in [e.file_unique_id for e in uow.evidence_of(ticket.ticket_no)]
        assert "supplement" not in [e.kind for e in uow.events_of(ticket.ticket_no)]


def test_an_appeal_for_a_ticket_closed_meanwhile_is_not_sent(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "reject", reason="不符合")
    open_ticket(linked, disputed.ticket_no)
    linked.press("申诉")
    linked.press("开始申诉")
    linked.photo("late")
    agent_moves(app, disputed.ticket_no, "close")
    result = linked.press("提交申诉")
    assert linked.state == "status.detail"
    assert linked.last.replies[0].key == "status.moved_on"
    assert not any(isinstance(e, HandoffRequested) for e in result.effects)
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.CLOSED and ticket.appeal_count == 0


def test_an_appeal_made_twice_from_two_devices_counts_once(
    app: App, linked: Chat, disputed: Ticket
) -> None:
    agent_moves(app, disputed.ticket_no, "reject", reason="不符合")
    phone = linked
    laptop = another_chat(linked, "laptop")
    for device in (phone, laptop):
        open_ticket(device, disputed.ticket_no)
        device.press("申诉")
        device.press("开始申诉")
        device.type("我从未打开过课程")
    phone.press("提交申诉")
    laptop.press("提交申诉")
    assert laptop.last.replies[0].key == "status.moved_on"
    (ticket,) = phone.tickets()
    assert ticket.status is TicketStatus.APPEALED and ticket.appeal_count == 1
    with app.store.unit_of_work() as uow:
        assert [e.kind for e in uow.events_of(ticket.ticket_no)].count("appeal") == 1
