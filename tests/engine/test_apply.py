"""申请退款: order → reason → sub-reason → pre-check → evidence → amount → confirm → ticket."""

from __future__ import annotations

import re

import pytest

from bot.app import App
from bot.domain import Outcome, Priority, Reason, RefundState, SubReason, TicketStatus
from bot.engine import HandoffRequested, TicketSubmitted
from tests.engine.conftest import Chat, another_chat, apply_for

TICKET_NO = re.compile(r"^T20261124-\d{4}$")


@pytest.fixture
def linked(chat: Chat) -> Chat:
    chat.link()
    return chat


def to_amount(chat: Chat, order: str = "星河", reason: str = "七天无理由") -> None:
    chat.command("refund")
    chat.press(order)
    chat.press(reason)
    chat.press("继续申请")
    chat.press("上传完成")
    assert chat.state == "apply.amount", chat.text


def test_only_the_customers_own_orders_are_offered_newest_first(linked: Chat) -> None:
    linked.press("申请退款")
    assert linked.state == "apply.choose_order"
    orders = linked.buttons()[:-2]
    assert [o.split(" · ")[0] for o in orders] == [
        "幻境点卡",
        "星河视频年卡",
        "知行网课年卡",
        "电子书年卡",
        "力健健身年卡",
    ]
    assert not any("别人的年卡" in b for b in linked.buttons())
    assert linked.buttons()[-2:] == ["转人工", "取消"]


def test_a_seven_day_fast_refund_is_approved_at_once(linked: Chat, app: App) -> None:
    linked.press("申请退款")
    linked.press("星河")
    assert linked.state == "apply.choose_reason"
    linked.press("七天无理由")
    assert linked.state == "apply.precheck"
    assert "符合极速退款" in linked.text and "¥198.00" in linked.text
    linked.press("继续申请")
    assert linked.state == "apply.evidence"
    linked.press("上传完成")  # no evidence needed
    assert linked.state == "apply.amount"
    assert "全额 ¥198.00" in linked.buttons()
    linked.press("全额")
    assert linked.state == "apply.confirm"
    assert "¥198.00" in linked.text
    result = linked.press("确认提交")
    assert linked.state == "status.detail"
    (ticket,) = linked.tickets()
    assert TICKET_NO.match(ticket.ticket_no)
    assert ticket.ticket_no == "T20261124-0001"
    assert ticket.status is TicketStatus.APPROVED
    assert ticket.approved_fen == ticket.requested_fen == 19800
    assert ticket.payout_due is not None
    submitted = [e for e in result.effects if isinstance(e, TicketSubmitted)]
    assert submitted == [TicketSubmitted(ticket.ticket_no, "approved")]
    assert f"售后单号 {ticket.ticket_no}" in linked.text
    with app.store.unit_of_work() as uow:
        (refund,) = uow.refunds_of_order("V1")
    assert refund.state is RefundState.PENDING
    assert refund.amount_fen == 19800 and refund.ticket_no == ticket.ticket_no


def test_ticket_numbers_count_up_within_the_day(linked: Chat) -> None:
    first = apply_for(linked, "星河", "七天无理由")
    second = apply_for(linked, "电子书", "误购", "买错了")
    assert (first.ticket_no, second.ticket_no) == ("T20261124-0001", "T20261124-0002")


def test_a_purchase_too_old_for_seven_days_goes_to_review(linked: Chat) -> None:
    ticket = apply_for(linked, "电子书", "误购", "买错了")
    # M1 is partly used (30 days): pro-rata, needs an agent
    assert ticket.status is TicketStatus.SUBMITTED
    assert ticket.quote.outcome is Outcome.REVIEW
    assert ticket.reason is Reason.MISTAKEN_PURCHASE and ticket.sub_reason is SubReason.MISTAKEN
    assert 0 < ticket.requested_fen < 10000
    assert "等待客服审核" in linked.text


def test_an_excluded_category_is_refused_with_the_reason_and_other_ways(linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("幻境点卡")
    linked.press("七天无理由")
    assert linked.state == "apply.precheck"
    assert "按此原因暂不能退款" in linked.text
    assert "「游戏点卡」按商品性质不宜退货,你在购买时已确认" in linked.text
    assert "消费者权益保护法》第二十五条" in linked.text
    assert "实施条例》(国务院令第778号,2024年7月1日起施行)第十九条" in linked.text
    assert linked.buttons() == ["换个原因", "转人工", "取消"]
    assert "继续申请" not in linked.buttons()
    linked.press("换个原因")
    assert linked.state == "apply.choose_reason"
    assert linked.tickets() == []


def test_an_activated_course_takes_the_dispute_path_and_needs_evidence(linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("知行网课")
    linked.press("七天无理由")
    assert linked.state == "apply.precheck"
    assert "订单显示已激活" in linked.text
    assert "你在购买时确认过「激活后不适用七天无理由」" in linked.text
    assert "网络购买商品七日无理由退货暂行办法" in linked.text
    assert linked.buttons()[:2] == ["我没有真正使用,申请核实", "换个原因"]
    linked.press("我没有真正使用")
    assert linked.state == "apply.precheck"
    assert "可以申请,需客服审核" in linked.text
    linked.press("继续申请")
    assert linked.state == "apply.evidence"
    assert "至少 1 份" in linked.text and "学习进度" in linked.text
    linked.press("上传完成")
    assert linked.state == "apply.evidence"
    assert linked.last.replies[0].key == "evidence.error.not_enough"
    linked.photo("no-progress")
    assert "已收到 1 份" in linked.text
    linked.press("上传完成")
    linked.press("全额")
    assert "已激活但未实际使用" in linked.text
    linked.press("确认提交")
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.SUBMITTED and ticket.approved_fen is None
    assert ticket.sub_reason is SubReason.ACTIVATION_DISPUTE
    assert ticket.quote.outcome is Outcome.REVIEW
    assert ticket.requested_fen == 59900


def test_a_service_issue_needs_evidence_and_is_reviewed(linked: Chat, app: App) -> None:
    linked.press("申请退款")
    linked.press("力健")
    linked.press("服务未达标")
    assert linked.state == "apply.choose_sub_reason"
    assert linked.buttons()[:4] == [
        "权益缺失或降级",
        "内容与描述不符",
        "商家失联/门店倒闭",
        "服务中断",
    ]
    linked.press("权益缺失")
    assert linked.state == "apply.precheck"
    linked.press("继续申请")
    linked.press("上传完成")
    assert linked.state == "apply.evidence"
    linked.photo("screenshot")
    linked.press("上传完成")
    linked.press("全额")
    linked.press("确认提交")
    (ticket,) = linked.tickets()
    assert ticket.status is TicketStatus.SUBMITTED
    assert ticket.priority is Priority.NORMAL
    with app.store.unit_of_work() as uow:
        evidence = uow.evidence_of(ticket.ticket_no)
    assert [e.file_unique_id for e in evidence] == ["uid-screenshot"]


def test_an_unreachable_merchant_gets_the_priority_channel(linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("力健")
    linked.press("服务未达标")
    linked.press("商家失联")
    assert "已为你开通退款优先通道" in linked.text
    assert "消费者权益保护法》第四十四条" in linked.text
    # 240 of 365 days used: ¥2,680.00 × 125/365 = ¥917.81, the deduction shown once as minus
    assert "240/365" in linked.text and "-¥1,762.19" in linked.text
    assert "扣除 -" not in linked.text
    assert "可退金额 ¥917.81" in linked.text
    assert "2026-11-25 前完成审核" in linked.text  # one working day
    ticket = apply_for(linked, "力健", "服务未达标", "商家失联", photos=1)
    assert ticket.priority is Priority.HIGH
    assert str(ticket.review_due) == "2026-11-25"
    assert ticket.requested_fen == 91781


def test_the_breakdown_reads_right_in_english(linked: Chat) -> None:
    linked.command("language")
    linked.command("refund")
    linked.press("力健")
    linked.press("Service not as promised")
    linked.press("unreachable")
    assert "-¥1,762.19" in linked.text
    assert "deducted -" not in linked.text


def test_a_smaller_amount_is_accepted(linked: Chat) -> None:
    to_amount(linked)
    linked.type("50.5")
    assert linked.state == "apply.confirm"
    assert "退款金额:¥50.50" in linked.text
    linked.press("确认提交")
    (ticket,) = linked.tickets()
    assert ticket.requested_fen == ticket.approved_fen == 5050


@pytest.mark.parametrize("typed", ["¥20", "20元", "２０", " 20 "])
def test_amounts_are_read_as_people_write_them(linked: Chat, typed: str) -> None:
    to_amount(linked)
    linked.type(typed)
    assert linked.state == "apply.confirm", linked.text
    assert "退款金额:¥20.00" in linked.text


def test_more_than_the_refundable_amount_is_refused_with_the_cap(linked: Chat) -> None:
    to_amount(linked)
    linked.type("198.01")
    assert linked.state == "apply.amount"
    assert linked.last.replies[0].key == "amount.error.above_max"
    assert "¥198.00" in linked.last.replies[0].text


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("abc", "amount.error.format"),
        ("12.345", "amount.error.format"),
        ("1,000", "amount.error.format"),
        ("-5", "amount.error.format"),
        ("", "amount.error.format"),
        ("0", "amount.error.not_positive"),
        ("0.00", "amount.error.not_positive"),
    ],
)
def test_garbage_and_zero_amounts_are_refused(linked: Chat, typed: str, key: str) -> None:
    to_amount(linked)
    linked.type(typed)
    assert linked.state == "apply.amount"
    assert linked.last.replies[0].key == key
    assert linked.last.replies[-1].key == "apply.amount"
    assert "全额 ¥198.00" in linked.buttons()


def test_the_amount_can_be_changed_before_submitting(linked: Chat) -> None:
    to_amount(linked)
    linked.type("10")
    linked.press("修改金额")
    assert linked.state == "apply.amount"
    linked.type("20")
    linked.press("确认提交")
    (ticket,) = linked.tickets()
    assert ticket.requested_fen == 2000


def test_an_order_with_an_open_ticket_is_refused_at_the_precheck(linked: Chat) -> None:
    first = apply_for(linked, "知行", "七天无理由", "我没有真正使用", photos=1)
    linked.command("refund")
    linked.press("知行")
    linked.press("服务未达标")
    linked.press("内容与描述不符")
    assert linked.state == "apply.precheck"
    assert f"已有处理中的售后单 {first.ticket_no}" in linked.text
    assert "继续申请" not in linked.buttons()
    assert len(linked.tickets()) == 1


def test_a_ticket_opened_meanwhile_is_refused_at_submission(app: App, linked: Chat) -> None:
    to_amount(linked)
    linked.press("全额")
    other_device = another_chat(linked, "second-device")
    other = apply_for(other_device, "星河", "七天无理由")
    linked.press("确认提交")
    assert linked.state == "apply.confirm"
    assert len(linked.tickets()) == 1
    assert linked.last.replies[0].key == "precheck.refused.open_ticket"
    assert other.ticket_no in linked.last.replies[0].text


def test_the_reason_other_hands_over_to_a_person(linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("星河")
    result = linked.press("其他")
    assert linked.state == "handoff.with_agent"
    (handoff,) = [e for e in result.effects if isinstance(e, HandoffRequested)]
    assert handoff.order_id == "V1" and handoff.reason == "other"
    assert linked.tickets() == []


def test_back_goes_one_step_back(linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("力健")
    linked.press("服务未达标")
    linked.press("返回")
    assert linked.state == "apply.choose_reason"
    linked.press("返回")
    assert linked.state == "apply.choose_order"


def test_a_coupon_is_returned_as_a_coupon_only_on_a_full_refund(app: App, linked: Chat) -> None:
    linked.press("申请退款")
    linked.press("电子书")
    linked.press("误购")
    linked.press("买错了")
    assert "优惠券 ¥10.00" in linked.text and "不退回" in linked.text
