"""The agent side in the console (`refund-bot console --agent`): a whole case rehearsed offline
through the same desk services — queue, claim, need, note, say, approve, reject with a standard
reason, refunded, return — and the customer side honest about there being no desk without it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.clock import SHANGHAI, FixedClock
from bot.console import KEY, Console, rehearsal_config
from bot.store.sqlite import SqliteStore
from tests.factories import repo_config


def _app(agent: bool) -> App:
    clock = FixedClock(datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI))
    config = rehearsal_config(repo_config()) if agent else repo_config()
    return build_app(config, clock=clock, store=SqliteStore.open(":memory:"))


@pytest.fixture
def console() -> Iterator[tuple[Console, list[str]]]:
    app = _app(agent=True)
    written: list[str] = []
    console = Console(app, written.append, agent=True)
    console.start()
    yield console, written
    app.close()


def type_lines(console: Console, written: list[str], *lines: str) -> str:
    """Type lines (a label is pressed by its number); what the console wrote meanwhile."""
    start = len(written)
    for line in lines:
        if line.startswith("#"):  # press the button whose label contains the rest
            label = line[1:]
            number = next(i for i, b in enumerate(console.buttons, 1) if label in b.label)
            line = str(number)
        assert console.handle_line(line)
    return "\n".join(written[start:])


def test_a_whole_case_is_rehearsed_in_the_console(
    console: tuple[Console, list[str]], tmp_path: Path
) -> None:
    c, written = console
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"\x89PNG fake")
    apply = ("/contact", "#申请退款", "#星河", "#服务未达标", "#权益缺失", "#继续申请")
    type_lines(c, written, *apply, f"/photo {shot}")
    out = type_lines(c, written, "#上传完成", "#全额", "#确认提交")
    assert "T20261124-0001" in out
    out = type_lines(c, written, "/desk queue")
    assert "T20261124-0001 · 普通 · 已提交" in out
    out = type_lines(c, written, "/desk open T20261124-0001", "/desk claim")
    assert "✅ 演练客服 认领了 T20261124-0001。" in out
    assert "🤖 客服 演练客服 已开始处理你的售后单 T20261124-0001" in out
    out = type_lines(c, written, "/desk note 先核实会员后台")
    assert "✍ 内部备注,客户看不到。" in out and "🤖" not in out
    out = type_lines(c, written, "/desk say 您好,正在核实")
    assert "🤖 您好,正在核实" in out and "📤 已发给客户。" in out
    out = type_lines(c, written, "/desk reject")
    assert "[outside_seven_days] 已超过七天无理由退货期限。" in out
    out = type_lines(c, written, "/desk approve 91.67")
    assert "退款 ¥91.67" in out
    out = type_lines(c, written, "/desk refunded")
    assert "已退款 ¥91.67" in out and "请为这次服务打分" not in out  # the person has the chat
    out = type_lines(c, written, "/desk return")
    assert "请为这次服务打分" in out  # asked once the chat is back with the bot
    out = type_lines(c, written, "#★★★★★", "很快")
    assert "感谢您的评价" in out
    out = type_lines(c, written, "/desk history")
    for line in ("📝 备注:先核实会员后台", "📤 发给客户:您好,正在核实", "⭐ 评分 5/5 · 很快"):
        assert line in out, line


def test_a_standard_reason_by_name_and_return_in_the_console(
    console: tuple[Console, list[str]],
) -> None:
    c, written = console
    type_lines(c, written, "/contact", "转人工")
    out = type_lines(c, written, "/desk say 在的")
    assert "🤖 在的" in out
    out = type_lines(c, written, "/desk reject outside_seven_days")
    assert "这个会话还没有售后单" in out  # a case without a ticket: nothing to reject
    out = type_lines(c, written, "/desk return")
    assert "✅ 演练客服 把会话交还给了退款助手。" in out
    conv = c.app.engine.conversation(KEY)
    assert conv is not None and (conv.flow, conv.state) == ("menu", "main")


def test_without_the_agent_side_the_console_customer_is_not_promised_a_person() -> None:
    app = _app(agent=False)
    written: list[str] = []
    c = Console(app, written.append)
    c.start()
    out = type_lines(c, written, "/contact", "转人工")
    assert "抱歉,目前没有在线人工客服" in out and "已为你转接" not in out
    assert "(Agent side" not in "\n".join(written)
    app.close()
