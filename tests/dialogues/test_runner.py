"""The runner itself: invalid scripts name their step, failures say what the bot did, known bugs
are strict, coverage is classified right, and the CLI's exit codes."""

from __future__ import annotations

import io
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from telegram.error import BadRequest

from bot.app import load_dialogue
from bot.cli import main
from bot.dialogue_tests import Coverage, Session, report, run_dialogues, run_script_sync
from bot.dialogue_tests._script import (
    parse_advance,
    parse_money,
    parse_now,
    parse_script,
    parse_size,
)
from bot.dialogue_tests._session import script_config
from tests.dialogues.corpus import CONFIG


def write(tmp_path: Path, body: str, name: str = "script.yaml") -> Path:
    """A script file; a step `- LINK` stands for /start and sharing the own phone."""
    path = tmp_path / name
    text = textwrap.dedent(body).replace("  - LINK\n", "  - send: /start\n  - press: 分享手机号\n")
    path.write_text(text, encoding="utf-8")
    return path


def failure_of(path: Path) -> str:
    result = run_script_sync(path, CONFIG)
    assert result.failure is not None, "the script was expected to fail"
    return result.failure


def test_unknown_keys_and_bad_values_name_the_script_and_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps:
          - send: /start
            expect: {replly: 你好}
          - pres: 申请退款
          - press: {label: a, data: b}
          - advance: 3 weeks
          - send: hi
            photo: p
          - expect: {reply: 你好,张三}
          - document: {name: a.pdf, size: lots}
        """,
    )
    text = failure_of(path)
    assert f"{path}: step 1 (send): expect.replly: unknown key" in text
    assert f"{path}: step 2: pres: unknown key" in text
    assert "step 3 (press): press: give either label or data" in text
    assert "step 4 (advance): advance: must be like '3 working days'" in text
    assert "step 5 (send): one action per step, found send, photo" in text
    assert "step 6: expect.张三: unknown key (a comma inside {…} or […] splits the text" in text
    assert "step 7 (document): document.size: must be a size like 150000" in text


def test_bad_given_config_and_orders_are_reported_as_such(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        given:
          now: 2026-11-24 10:00
          config: {policy: {pro_rata_unit: week}}
        steps: [{send: /start}]
        """,
        "config.yaml",
    )
    assert "given.config: policy.pro_rata_unit: must be one of 'day' or 'month'" in failure_of(
        config
    )
    orders = write(
        tmp_path,
        """
        given:
          now: 2026-11-24 10:00
          orders: [{order_id: X1, phone: "+8613800138000"}]
        steps: [{send: /start}]
        """,
        "orders.yaml",
    )
    assert "given.orders: item [0] (order X1), customer_name: is missing" in failure_of(orders)
    no_now = write(tmp_path, "given: {demo: true}\nsteps: [{send: /start}]\n", "now.yaml")
    assert "given.now: is required" in failure_of(no_now)


def test_a_failed_expectation_shows_the_step_and_everything_the_bot_did(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps:
          - LINK
          - press: 申请退款
            note: the order list
            expect:
              reply: 请选择要退保的订单
              buttons: [星河视频]
              state: apply.choose_reason
              tickets: 1
        """,
    )
    text = failure_of(path)
    assert f"{path}: step 3 of 3 (press 「申请退款」) failed" in text
    assert "note: the order list" in text
    assert "- expected a reply containing '请选择要退保的订单'" in text
    assert "- expected the buttons ['星河视频'], the step offered ['青柠视频" in text
    assert "- expected state apply.choose_reason, the customer is in apply.choose_order" in text
    assert "- expected 1 ticket(s), the customer has 0" in text
    # the bot's full reply with its buttons, and its state
    assert (
        "«请选择要退款的订单:»  [青柠视频 会员年卡 · ¥178.00 · 2026-11-23 · XN20261123009]" in text
    )
    assert "[转人工] [取消]" in text
    assert "customer's state: apply.choose_order" in text


def test_a_step_that_cannot_be_done_says_why(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps:
          - LINK
          - press: 申请退货
        """,
    )
    text = failure_of(path)
    assert "step 3 of 3 (press 「申请退货」) failed" in text
    assert (
        "could not do the step: no button 「申请退货」 on the latest message with buttons; " in text
    )
    assert "it shows ['申请退款', '我的售后', 'English']" in text
    ambiguous = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps:
          - LINK
          - press: 申请退款
          - press: 知行网课
        """,
        "ambiguous.yaml",
    )
    assert "「知行网课」 matches several buttons" in failure_of(ambiguous)


def test_ticket_expectations_compare_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps:
          - LINK
          - press: 申请退款
          - press: 星河视频
          - press: 七天无理由
          - press: 继续申请
          - press: 上传完成
          - press: 全额
          - press: 确认提交
            expect:
              ticket:
                status: submitted
                amount: 198.01
                priority: high
                payout_due: 2026-11-26
                evidence: 1
        """,
    )
    text = failure_of(path)
    assert "expected ticket T20261124-0001 status submitted, found approved" in text
    assert "amount ¥198.01, found ¥198.00" in text
    assert "priority high, found normal" in text
    assert "payout due 2026-11-26, found 2026-11-27" in text
    assert "to hold 1 file(s), found 0" in text


def test_a_known_bug_that_no_longer_shows_is_reported(tmp_path: Path) -> None:
    passing = write(
        tmp_path,
        """
        known_bug: imagined
        given: {now: 2026-11-24 10:00, demo: true}
        steps: [{send: /start, expect: {state: start.welcome}}]
        """,
    )
    result = run_script_sync(passing, CONFIG)
    assert (result.verdict, result.ok) == ("XPASS", False)
    assert "remove known_bug" in result.explanation()
    failing = write(
        tmp_path,
        """
        known_bug: imagined
        given: {now: 2026-11-24 10:00, demo: true}
        steps: [{send: /start, expect: {state: menu.main}}]
        """,
        "failing.yaml",
    )
    result = run_script_sync(failing, CONFIG)
    assert (result.verdict, result.ok) == ("XFAIL", True)
    invalid = write(tmp_path, "known_bug: x\ngiven: {}\nsteps: []\n", "invalid.yaml")
    result = run_script_sync(invalid, CONFIG)
    assert (result.verdict, result.ok) == ("FAIL", False)  # a broken script is no known bug


def test_coverage_tells_global_transitions_from_flow_ones() -> None:
    flows, _ = load_dialogue()
    coverage = Coverage()
    coverage.fired |= {
        ("start", "welcome", "share_contact", "@menu.main"),  # a flow transition
        ("menu", "main", "start", "main"),  # global start with dest @menu.main (same flow)
        ("apply", "evidence", "start", "evidence"),  # global start that stays put
        ("apply", "evidence", "cancel", "@menu.main"),
    }
    coverage.states |= {("start", "welcome"), ("menu", "main")}
    figures = report(coverage, flows)
    start = next(f for f in figures.flows if f.name == "start")
    assert start.transitions_covered == [("start", "welcome", "share_contact", "@menu.main")]
    assert set(figures.globals_covered) == {
        ("start", "@menu.main"),
        ("start", ""),
        ("cancel", "@menu.main"),
    }
    problems = figures.problems()
    assert "state apply.evidence is never visited" in problems
    assert any(p.startswith("transitions covered 4/") for p in problems)
    lines = "\n".join(figures.lines())
    assert "uncovered transition: welcome --link_by_order--> ask_order_no" in lines
    assert "uncovered transition: * --help--> (stays)" in lines


def test_values_of_the_format() -> None:
    assert parse_size("25MB") == 25 * 1024 * 1024
    assert parse_size("150KB") == 150 * 1024
    assert parse_size(1000) == 1000
    assert parse_money(91.67) == 9167
    assert parse_money("¥100") == 10000
    assert parse_advance("3 working days") == 3
    assert parse_advance("2 工作日") == 2
    assert parse_advance("2h") == timedelta(hours=2)
    assert parse_advance("30m") == timedelta(minutes=30)
    assert parse_advance("1 day") == timedelta(days=1)
    assert parse_now("2026-11-24 10:00").utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError):
        parse_advance("soon")


def test_the_cli_exit_codes_and_report(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps: [{send: /start, expect: {state: start.welcome}}]
        """,
        "good.yaml",
    )
    out = io.StringIO()
    assert run_dialogues([good], CONFIG, out=out) == 0
    text = out.getvalue()
    assert f"PASS   {good}  (1 steps" in text
    assert "start       states  1/4" in text
    assert "1 passed, 0 known bug(s), 0 failed" in text
    out = io.StringIO()
    assert run_dialogues([good], CONFIG, check_coverage=True, out=out) == 1
    assert "coverage: state appeal.explain is never visited" in out.getvalue()
    bad = write(
        tmp_path,
        """
        given: {now: 2026-11-24 10:00, demo: true}
        steps: [{send: /start, expect: {state: menu.main}}]
        """,
        "bad.yaml",
    )
    out = io.StringIO()
    assert run_dialogues([tmp_path], CONFIG, out=out) == 1
    assert "FAIL   " in out.getvalue() and "expected state menu.main" in out.getvalue()
    assert run_dialogues([tmp_path / "missing"], CONFIG, out=io.StringIO()) == 2
    assert main(["--config", str(CONFIG), "dialogues", str(good)]) == 0
    assert main(["--config", str(CONFIG), "dialogues", str(bad)]) == 1


async def test_a_reply_telegram_would_refuse_is_an_error_of_the_step(tmp_path: Path) -> None:
    """The runner's Telegram is bot.testing's fake: what it refuses fails the step."""
    path = tmp_path / "script.yaml"
    script = parse_script(
        {"given": {"now": "2026-11-24 10:00"}, "steps": [{"send": "/start"}]}, path
    )
    session = Session(script, script_config(script, path, CONFIG, tmp_path), Coverage())
    await session.start()
    try:
        await session.application.bot.send_message(session.customer.id, "好" * 4096)
        with pytest.raises(BadRequest):
            await session.application.bot.send_message(session.customer.id, "好" * 4097)
        seen = session.observe(0, [], [])
    finally:
        await session.stop()
    assert seen.replies[-1].text == "好" * 4096
    assert seen.errors == ["Telegram refused sendMessage: Bad Request: message is too long"]
