"""Button presses: every press answered; forged, stale and foreign presses change nothing; the
same update twice has effect once."""

from __future__ import annotations

from bot.testing import Failure
from tests.telegram.support import ALICE, BOB, ShopHarness

STALE = "This button has expired. Please use the buttons in the latest message."


def snapshot(harness: ShopHarness) -> tuple[str, int, int]:
    return (
        harness.state(ALICE),
        harness.count("SELECT count(*) FROM outbox"),
        harness.count("SELECT version FROM conversations WHERE user_id = '1001'"),
    )


async def test_forged_callback_data_is_answered_and_changes_nothing(harness: ShopHarness) -> None:
    await harness.link(ALICE)
    before = snapshot(harness)
    harness.tg.clear()
    for forged in ("000000.0", "not-a-token", "../../etc", "x" * 64):
        await harness.process(harness.updates.press(ALICE, forged))
    answers = harness.tg.of("answerCallbackQuery")
    assert [a.get("text") for a in answers] == [STALE] * 4
    assert harness.tg.sent() == []
    assert harness.tg.of("editMessageReplyMarkup") == []
    state, outbox, _ = snapshot(harness)
    assert (state, outbox) == before[:2]


async def test_a_stale_button_is_answered_and_changes_nothing(harness: ShopHarness) -> None:
    await harness.link(ALICE)
    old = harness.press_data(ALICE.id, "My requests")
    await harness.press(ALICE, "Request a refund")  # a new prompt: the menu's buttons are spent
    assert harness.state(ALICE) == "apply.choose_order"
    before = snapshot(harness)
    harness.tg.clear()
    await harness.process(harness.updates.press(ALICE, old))
    assert [a.get("text") for a in harness.tg.of("answerCallbackQuery")] == [STALE]
    assert harness.tg.sent() == []
    assert harness.tg.of("editMessageReplyMarkup") == []
    assert snapshot(harness)[:2] == before[:2]


async def test_a_press_by_someone_else_in_the_chat_is_refused(harness: ShopHarness) -> None:
    """Presses are checked against the chat's owner before the engine sees them."""
    await harness.link(ALICE)
    data = harness.press_data(ALICE.id, "Request a refund")
    before = snapshot(harness)
    harness.tg.clear()
    await harness.process(harness.updates.press(BOB, data, chat=ALICE.private_chat()))
    assert [a.get("text") for a in harness.tg.of("answerCallbackQuery")] == [STALE]
    assert harness.tg.sent() == []
    assert snapshot(harness) == before


async def test_the_same_message_update_twice_has_effect_once(harness: ShopHarness) -> None:
    await harness.link(ALICE)
    update = harness.updates.command(ALICE, "status")
    await harness.process(update)
    sent = len(harness.tg.sent())
    before = snapshot(harness)
    await harness.process(update)  # a webhook retry, or a redelivery after a restart
    assert len(harness.tg.sent()) == sent
    assert snapshot(harness) == before


async def test_the_same_press_twice_has_effect_once_and_is_answered_twice(
    harness: ShopHarness,
) -> None:
    await harness.link(ALICE)
    data = harness.press_data(ALICE.id, "Request a refund")
    press = harness.updates.press(ALICE, data)
    await harness.process(press)
    assert harness.state(ALICE) == "apply.choose_order"
    sent = len(harness.tg.sent())
    before = snapshot(harness)
    await harness.process(press)
    assert len(harness.tg.of("answerCallbackQuery")) == 2
    assert [a.get("text") for a in harness.tg.of("answerCallbackQuery")] == [None, None]
    assert len(harness.tg.of("editMessageReplyMarkup")) == 1
    assert len(harness.tg.sent()) == sent
    assert snapshot(harness) == before


async def test_a_failed_answer_does_not_lose_the_turn(harness: ShopHarness) -> None:
    """The turn committed before the press was answered: its reply still goes out."""
    await harness.link(ALICE)
    harness.tg.fail("answerCallbackQuery", Failure(400, "Bad Request: query is too old"))
    harness.tg.fail("editMessageReplyMarkup", Failure(400, "Bad Request: message can't be edited"))
    data = harness.press_data(ALICE.id, "Request a refund")
    harness.tg.clear()
    await harness.process(harness.updates.press(ALICE, data))
    assert len(harness.tg.of("answerCallbackQuery")) == 1
    assert harness.tg.texts(ALICE.id) == ["Please choose the order you'd like refunded:"]


async def test_a_press_in_another_group_or_on_an_inline_message_is_answered(
    harness: ShopHarness,
) -> None:
    """The client shows a spinner until a press is answered: every press gets an answer."""
    other_group = {"id": -100999, "type": "supergroup", "title": "别的群"}
    in_group = harness.updates.press(ALICE, "000000.0", chat=other_group)
    inline = harness.updates.press(ALICE, "000000.0")
    query = inline["callback_query"]
    del query["message"]
    query["inline_message_id"] = "inline-1"
    for update in (in_group, inline):
        await harness.process(update)
    answered = [a["callback_query_id"] for a in harness.tg.of("answerCallbackQuery")]
    assert answered == [in_group["callback_query"]["id"], query["id"]]
    assert harness.tg.sent() == []
