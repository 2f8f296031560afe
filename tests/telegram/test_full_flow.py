"""The whole customer journey through python-telegram-bot: raw updates in, Bot API calls out."""

from __future__ import annotations

import re

from bot.clock import FixedClock
from bot.config import Config
from bot.domain import EvidenceKind
from bot.testing import FakeTelegram
from tests.telegram.support import ALICE, ShopHarness, buttons


async def test_start_contact_apply_album_confirm_status(harness: ShopHarness) -> None:
    tg, up = harness.tg, harness.updates

    await harness.process(up.command(ALICE, "start"))
    welcome = tg.sent(ALICE.id)[-1]
    keyboard = welcome["reply_markup"]
    assert keyboard["one_time_keyboard"] is True
    assert keyboard["keyboard"][0] == [{"text": "📱 Share phone number", "request_contact": True}]

    await harness.process(up.contact(ALICE))
    linked, menu = tg.sent(ALICE.id)[-2:]
    assert linked["text"] == "Verified. Hi, 张三!"
    assert linked["reply_markup"] == {"remove_keyboard": True}  # the contact keyboard goes away
    assert [label for label, _ in buttons(menu)] == [
        "Request a refund",
        "My requests",
        "中文",
    ]

    presses = 0
    for label in (
        "Request a refund",
        "星河视频年卡",
        "Service not as promised",
        "Benefits missing",
        "Continue request",
    ):
        sent_before = len(tg.sent())
        data = await harness.press(ALICE, label)
        presses += 1
        assert len(data.encode()) <= 64
        assert len(tg.sent()) > sent_before, f"no reply to {label}"
    assert harness.state(ALICE) == "apply.evidence"

    # an album: two updates with one media_group_id become one upload step
    await harness.process(up.photo(ALICE, "p1", album="alb-1"))
    await harness.process(up.photo(ALICE, "p2", album="alb-1"))
    assert "Received" not in " ".join(tg.texts())  # still collecting
    await harness.flush_albums()
    received = [t for t in tg.texts(ALICE.id) if t.startswith("Received")]
    assert received == ["Received 2, 2 in total."]

    for label in ("Done uploading", "Full amount", "Submit"):
        await harness.press(ALICE, label)
        presses += 1

    texts = tg.texts(ALICE.id)
    submitted = next(t for t in texts if t.startswith("Submitted."))
    match = re.search(r"T20261124-\d{4}", submitted)
    assert match is not None
    ticket_no = match.group(0)

    await harness.process(up.command(ALICE, "status"))
    assert tg.texts(ALICE.id)[-1].startswith("Your requests (newest first):")
    assert ticket_no in tg.texts(ALICE.id)[-1]

    # every press answered, and each one took the keyboard off the message it was pressed on
    assert len(tg.of("answerCallbackQuery")) == presses
    edits = tg.of("editMessageReplyMarkup")
    assert len(edits) == presses
    assert all("reply_markup" not in e for e in edits)
    # the ticket holds the album's two photos, largest size of each
    with harness.engine_app.store.unit_of_work() as uow:
        ticket = uow.ticket(ticket_no)
        evidence = uow.evidence_of(ticket_no)
    assert ticket is not None and ticket.requested_fen == 19800
    assert [(e.kind, e.file_id, e.size_bytes) for e in evidence] == [
        (EvidenceKind.PHOTO, "p1", 150_000),
        (EvidenceKind.PHOTO, "p2", 150_000),
    ]
    # everything the engine queued went out
    assert harness.count("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    assert harness.count("SELECT count(*) FROM outbox") == len(tg.sent(ALICE.id))


async def test_album_parts_are_one_turn_and_each_update_id_is_recorded(
    harness: ShopHarness,
) -> None:
    tg, up = harness.tg, harness.updates
    await harness.to_evidence(ALICE)
    parts = [up.photo(ALICE, f"a{i}", album="alb-2") for i in range(3)]
    for part in parts:
        await harness.process(part)
    await harness.flush_albums()
    assert [t for t in tg.texts() if t.startswith("Received")] == ["Received 3, 3 in total."]
    keys = {f"tg:{p['update_id']}" for p in parts}
    recorded = harness.count(
        "SELECT count(*) FROM processed_updates WHERE dedupe_key IN ({})".format(
            ",".join(f"'{k}'" for k in keys)
        )
    )
    assert recorded == 3
    # Telegram redelivers one part (a webhook retry): it changes nothing
    sent = len(tg.sent())
    await harness.process(parts[1])
    await harness.flush_albums()
    assert len(tg.sent()) == sent


async def test_album_is_handled_after_the_wait_on_its_own(harness: ShopHarness) -> None:
    """No flush by hand: the timer of `album_wait_seconds` hands the album to the engine."""
    tg, up = harness.tg, harness.updates
    await harness.to_evidence(ALICE)
    harness.bot.adapter.album_wait = 0.05  # type: ignore[union-attr]
    await harness.process(up.photo(ALICE, "t1", album="alb-3"))
    await harness.process(up.photo(ALICE, "t2", album="alb-3"))

    await tg.until(lambda: any(t.startswith("Received") for t in tg.texts()))
    assert [t for t in tg.texts() if t.startswith("Received")] == ["Received 2, 2 in total."]


async def test_a_message_after_an_album_waits_for_the_album(harness: ShopHarness) -> None:
    """The chat's order holds: the album (sent first) is handled before the text after it."""
    tg, up = harness.tg, harness.updates
    await harness.to_evidence(ALICE)
    tg.clear()
    await harness.process(up.photo(ALICE, "o1", album="alb-4"))
    await harness.process(up.photo(ALICE, "o2", album="alb-4"))
    await harness.process(up.command(ALICE, "help"))
    texts = tg.texts(ALICE.id)
    assert texts[0] == "Received 2, 2 in total."
    assert any(t.startswith("I can help you") for t in texts[1:])


async def test_an_album_being_collected_at_shutdown_is_handled_not_lost(
    config: Config, clock: FixedClock, tg: FakeTelegram
) -> None:
    harness = await ShopHarness(config, clock, tg).start()
    try:
        await harness.to_evidence(ALICE)
        await harness.process(harness.updates.photo(ALICE, "s1", album="alb-5"))
    finally:
        await harness.stop()  # post_stop, as run_polling calls it after a stop signal
    assert tg.texts(ALICE.id)[-2] == "Received 1, 1 in total."
