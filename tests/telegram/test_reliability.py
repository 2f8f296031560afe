"""Nothing lost, nothing twice: restarts, the outbox, repeating jobs, floods, errors, 429s."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.config import Config
from bot.engine import Button, Inbound, Reply, TurnResult
from bot.store import OutboxMessage, UnitOfWork
from bot.telegram import IncomingLimit
from bot.telegram._outbox import RECORD_WITHIN
from bot.testing import Failure, FakeTelegram
from tests.telegram.support import ALICE, BOB, GROUP, ShopHarness


def pending(harness: ShopHarness) -> int:
    return harness.count("SELECT count(*) FROM outbox WHERE sent_at IS NULL")


def unrecorded(harness: ShopHarness) -> int:
    """Messages not marked sent in the file as another process sees it (no flush first)."""
    with closing(sqlite3.connect(harness.config.store.path)) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


async def test_a_restart_mid_flow_resumes_the_conversation(
    config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    first = await ShopHarness(config, clock, tg).start()
    try:
        await first.to_evidence(ALICE)
        await first.process(first.updates.photo(ALICE, "before-restart"))
    finally:
        await first.stop()

    # a new process: new App, new Application, the same SQLite file; Telegram's ids go on
    second = ShopHarness(config, clock, tg)
    second.updates = first.updates
    await second.start(orders=())
    try:
        assert second.state(ALICE) == "apply.evidence"
        await second.process(second.updates.photo(ALICE, "after-restart"))
        assert tg.texts(ALICE.id)[-2] == "Received 1, 2 in total."
        # a button sent before the restart still works: its token lives in the conversation
        await second.press(ALICE, "Done uploading")
        assert second.state(ALICE) == "apply.amount"
    finally:
        await second.stop()


async def test_messages_committed_but_not_sent_go_out_at_start_up(
    config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    first = await ShopHarness(config, clock, tg).start()
    try:
        await first.link(ALICE)
        # Telegram is unreachable: the turn commits, its replies stay in the outbox
        tg.fail("sendMessage", Failure.server_error(502))
        await first.process(first.updates.command(ALICE, "status"))
        assert tg.calls[-1].method == "sendMessage"  # the one failed attempt
        assert first.state(ALICE) == "status.list"
        assert pending(first) == 1
        texts_before = tg.texts(ALICE.id)
    finally:
        await first.stop()

    second = ShopHarness(config, clock, tg)
    second.updates = first.updates
    await second.start(orders=())  # post_init delivers the outbox
    try:
        assert pending(second) == 0
        new = tg.texts(ALICE.id)[len(texts_before) :]
        assert new == ["You don't have any requests yet."] or new[-1].startswith("Your requests")
        assert len(new) == 1
    finally:
        await second.stop()


async def test_the_outbox_job_delivers_messages_written_elsewhere_in_order(
    harness: ShopHarness,
) -> None:
    """An agent's decision or a CLI command writes to the outbox; the repeating job sends it."""
    await harness.link(ALICE)
    harness.tg.clear()
    with harness.engine_app.store.unit_of_work() as uow:
        for n in (1, 2):
            reply = Reply("status.next.refunded", f"notice {n}", (Button("Main menu", "ab12cd.0"),))
            uow.enqueue(OutboxMessage("telegram", str(ALICE.id), reply.to_payload()))
        uow.enqueue(OutboxMessage("console", "demo", Reply("x", "not for Telegram").to_payload()))
    (job,) = harness.application.job_queue.get_jobs_by_name("outbox")
    assert job.trigger.interval == timedelta(seconds=3600)
    await job.run(harness.application)
    assert harness.tg.texts() == ["notice 1", "notice 2"]
    assert harness.tg.sent()[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Main menu", "callback_data": "ab12cd.0"}]]
    }
    assert pending(harness) == 1  # the console's message is not Telegram's to send
    await job.run(harness.application)
    assert len(harness.tg.sent()) == 2


async def test_the_reminder_job_reminds_a_customer_who_stopped_mid_flow(
    harness: ShopHarness, clock: FixedClock
) -> None:
    await harness.to_evidence(ALICE)
    harness.tg.clear()
    (job,) = harness.application.job_queue.get_jobs_by_name("reminders")
    await job.run(harness.application)
    assert harness.tg.sent() == []  # not due yet
    clock.advance(timedelta(minutes=harness.config.dialogue.reminder_after_minutes + 1))
    await job.run(harness.application)
    texts = harness.tg.texts(ALICE.id)
    assert texts[0] == "Your refund request isn't finished yet. You can continue any time:"
    await job.run(harness.application)
    assert len(harness.tg.texts(ALICE.id)) == len(texts)  # one reminder only


async def test_the_daily_job_forgets_handled_update_ids_past_the_retention(
    harness: ShopHarness, clock: FixedClock
) -> None:
    await harness.process(harness.updates.command(ALICE, "start"))
    (job,) = harness.application.job_queue.get_jobs_by_name("prune")
    await job.run(harness.application)
    assert harness.count("SELECT count(*) FROM processed_updates") == 1  # kept: recent
    days = harness.config.store.processed_retention_days
    clock.advance(timedelta(days=days, seconds=1))
    await harness.process(harness.updates.command(ALICE, "help"))
    await job.run(harness.application)
    assert harness.count("SELECT count(*) FROM processed_updates") == 1  # only /help's is left


async def test_groups_and_channels_are_ignored(harness: ShopHarness) -> None:
    up = harness.updates
    harness.tg.clear()
    await harness.process(up.command(ALICE, "start", chat=GROUP))
    await harness.process(up.text(ALICE, "我要退款", chat=GROUP))
    await harness.process(up.press(ALICE, "000000.0", chat=GROUP))
    channel = {"id": -100777, "type": "channel", "title": "公告"}
    await harness.process(
        {
            "update_id": up.next_id(),
            "channel_post": {"message_id": 9, "date": 0, "chat": channel, "text": "/start"},
        }
    )
    # nothing is said or written; only the press is answered, so the client's spinner stops
    assert [c.method for c in harness.tg.calls] == ["answerCallbackQuery"]
    assert harness.count("SELECT count(*) FROM processed_updates") == 0
    assert harness.count("SELECT count(*) FROM conversations") == 0


async def test_a_flood_gets_one_polite_answer_and_the_rest_is_dropped_unwritten(
    harness: ShopHarness,
) -> None:
    now = [0.0]
    harness.bot.adapter.limit = IncomingLimit(3, lambda: now[0])  # type: ignore[union-attr]
    up = harness.updates
    for _ in range(3):
        await harness.process(up.command(ALICE, "help"))
    processed = harness.count("SELECT count(*) FROM processed_updates")
    assert processed == 3
    harness.tg.clear()
    await harness.process(up.command(ALICE, "help"))
    await harness.process(up.text(ALICE, "hello?"))
    await harness.process(up.press(ALICE, "000000.0"))
    flood = "You're sending messages very quickly, so I'll pause for a moment. Please wait a minute, then carry on."
    assert harness.tg.texts() == [flood]
    assert [a.get("text") for a in harness.tg.of("answerCallbackQuery")] == [None]  # still answered
    assert harness.count("SELECT count(*) FROM processed_updates") == processed  # nothing written
    # another customer is not affected, and a minute later the first one is heard again
    await harness.process(up.command(BOB, "start"))
    assert harness.tg.texts(BOB.id)[-1].startswith("Hi! This is the 小年卡盟")
    now[0] = 61.0
    heard = len(harness.tg.texts(ALICE.id))
    await harness.process(up.command(ALICE, "help"))
    assert harness.tg.texts(ALICE.id)[heard].startswith("I can help you")


async def test_the_flood_notice_is_in_the_customers_language(harness: ShopHarness) -> None:
    harness.bot.adapter.limit = IncomingLimit(1, lambda: 0.0)  # type: ignore[union-attr]
    zh = type(ALICE)(3003, language_code="zh-hans")
    await harness.process(harness.updates.command(zh, "start"))
    await harness.process(harness.updates.command(zh, "start"))
    assert harness.tg.texts(zh.id)[-1] == "你发消息太快了,我先暂停一下。请稍等一分钟再继续。"


async def test_an_error_in_one_update_is_logged_apologised_and_others_carry_on(
    harness: ShopHarness, caplog: pytest.LogCaptureFixture
) -> None:
    engine = harness.engine_app.engine
    real = engine.handle

    def handle(event: Inbound, also: Callable[[UnitOfWork], None] | None = None) -> TurnResult:
        if event.key.user_id == str(ALICE.id):
            raise RuntimeError("disk on fire")
        return real(event, also)

    engine.handle = handle  # type: ignore[method-assign]
    update = harness.updates.command(ALICE, "start")
    with caplog.at_level(logging.ERROR, logger="bot.telegram"):
        await harness.process(update)
    assert f"update {update['update_id']} failed" in caplog.text
    assert "disk on fire" in caplog.text
    assert harness.tg.texts(ALICE.id)[-2:] == [
        "Sorry, something went wrong on our side. Please try again in a moment, or type /agent to talk to a person."
    ]
    await harness.process(harness.updates.press(ALICE, "000000.0"))
    assert len(harness.tg.of("answerCallbackQuery")) == 1  # a failing press is answered too
    await harness.process(harness.updates.command(BOB, "start"))
    assert harness.tg.texts(BOB.id)[-1].startswith("Hi! This is the 小年卡盟")
    assert harness.count("SELECT count(*) FROM conversations WHERE user_id = '1001'") == 0


async def test_a_429_is_waited_out_and_retried_by_the_rate_limiter(
    harness: ShopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22 warns about RetryAfter's int seconds unless the timedelta behaviour is opted into
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    harness.tg.fail("sendMessage", Failure.flood(0.05))
    await harness.process(harness.updates.command(ALICE, "start"))
    sends = [c for c in harness.tg.calls if c.method == "sendMessage"]
    assert len(sends) == 2  # refused once, then accepted
    assert harness.tg.texts(ALICE.id)[0].startswith("Hi! This is the 小年卡盟")
    assert pending(harness) == 0


async def test_a_customer_who_blocked_the_bot_does_not_hold_up_the_outbox(
    harness: ShopHarness,
) -> None:
    await harness.link(ALICE)
    await harness.link(BOB)
    with harness.engine_app.store.unit_of_work() as uow:
        for chat, text in ((ALICE.id, "to alice"), (BOB.id, "to bob"), (ALICE.id, "alice again")):
            uow.enqueue(OutboxMessage("telegram", str(chat), Reply("k", text).to_payload()))
    harness.tg.clear()
    harness.tg.fail("sendMessage", Failure(403, "Forbidden: bot was blocked by the user"))
    (job,) = harness.application.job_queue.get_jobs_by_name("outbox")
    await job.run(harness.application)
    # the refused one is dropped (logged), the rest goes out, in order
    assert harness.tg.texts() == ["to alice", "alice again", "to bob"]
    assert pending(harness) == 0


async def test_a_message_telegram_refuses_for_good_is_replaced_by_a_short_notice(
    harness: ShopHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Never silence: a keyboard Telegram refuses (REPLY_MARKUP_TOO_LONG) gets a notice instead."""
    await harness.link(ALICE)
    buttons = tuple(Button(f"订单 {n}", f"t.{n}") for n in range(122))
    with harness.engine_app.store.unit_of_work() as uow:
        uow.enqueue(
            OutboxMessage("telegram", str(ALICE.id), Reply("k", "选订单", buttons).to_payload())
        )
        uow.enqueue(OutboxMessage("telegram", str(ALICE.id), Reply("k", "after").to_payload()))
    harness.tg.clear()
    with caplog.at_level(logging.ERROR):
        await harness.bot.adapter.outbox.deliver(harness.application.bot)
    assert [c.error for c in harness.tg.refused] == ["Bad Request: REPLY_MARKUP_TOO_LONG"]
    assert harness.tg.texts(ALICE.id)[-2:] == [
        "Sorry, a message could not be shown here. Type /menu to carry on from the menu,"
        " or /agent to talk to a person.",
        "after",
    ]
    assert harness.bot.adapter.outbox.refused == 1
    assert any("Reply_markup_too_long" in r.getMessage() for r in caplog.records), caplog.text
    assert pending(harness) == 0


async def test_a_delivery_is_recorded_soon_even_when_no_turn_follows(harness: ShopHarness) -> None:
    # the record rides on the next unit of work; when none comes, a timer writes it
    await harness.link(ALICE)  # (the contact keyboard shown and taken away: flag writes of its own)
    harness.engine_app.store.flush()
    before = len(harness.tg.texts(ALICE.id))
    await harness.process(harness.updates.command(ALICE, "help"))
    delivered = len(harness.tg.texts(ALICE.id)) - before
    assert delivered >= 1
    # delivered, not recorded yet: a crash now would send it again
    assert unrecorded(harness) == delivered
    await asyncio.sleep(RECORD_WITHIN + 0.3)  # the loop is free meanwhile: the timer fires
    assert unrecorded(harness) == 0


async def test_a_failure_to_record_deliveries_is_retried(
    harness: ShopHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = harness.engine_app.store
    real_flush = store.flush
    failures = []

    def busy_once() -> None:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        real_flush()

    monkeypatch.setattr(store, "flush", busy_once)
    monkeypatch.setattr("bot.telegram._outbox.RECORD_RETRY", 0.05)
    await harness.process(harness.updates.command(ALICE, "start"))
    await asyncio.sleep(RECORD_WITHIN + 0.3)  # the timer fails, re-arms, then writes them
    assert failures == [1]
    assert "delivery records not written; trying again" in caplog.text
    assert unrecorded(harness) == 0
