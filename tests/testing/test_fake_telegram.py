"""bot.testing's fake Bot API refuses what Telegram refuses and answers as Telegram does; its
switches (failures, gates) do what they say. Driven through python-telegram-bot's own `Bot`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.testing import (
    CALLBACK_DATA_LIMIT,
    CAPTION_LIMIT,
    DOWNLOAD_LIMIT,
    TEXT_LIMIT,
    TOKEN,
    Failure,
    FakeTelegram,
    Updates,
    User,
    refusal,
    utf16_length,
)

ALICE = User(1001, language_code="en")
BOB = User(2002, "李四")
DESK = -100123


@pytest.fixture
def tg() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, request=tg, get_updates_request=FakeTelegram()) as running:
        yield running


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"b{i}", callback_data=d)] for i, d in enumerate(data)]
    )


# -- what Telegram refuses ---------------------------------------------------------------------


async def test_text_over_4096_utf16_code_units_is_refused(bot: Bot, tg: FakeTelegram) -> None:
    await bot.send_message(ALICE.id, "a" * TEXT_LIMIT)
    emoji = "😀" * (TEXT_LIMIT // 2 + 1)  # 2,049 characters, 4,098 UTF-16 code units
    assert len(emoji) < TEXT_LIMIT < utf16_length(emoji)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(ALICE.id, emoji)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(ALICE.id, "  ")
    assert [c.params["text"][:1] for c in tg.refused] == ["😀", " "]
    assert tg.texts(ALICE.id) == ["a" * TEXT_LIMIT, emoji, "  "]  # every attempt is recorded


async def test_edited_text_over_the_limit_is_refused(bot: Bot) -> None:
    sent = await bot.send_message(ALICE.id, "short")
    with pytest.raises(BadRequest, match="Message_too_long"):
        await bot.edit_message_text("x" * (TEXT_LIMIT + 1), ALICE.id, sent.message_id)


async def test_caption_over_1024_is_refused_also_in_an_album(bot: Bot) -> None:
    await bot.send_photo(ALICE.id, "photo-1", caption="c" * CAPTION_LIMIT)
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_photo(ALICE.id, "photo-1", caption="c" * (CAPTION_LIMIT + 1))
    album = [InputMediaPhoto("p1"), InputMediaPhoto("p2", caption="c" * (CAPTION_LIMIT + 1))]
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_media_group(ALICE.id, album)


async def test_callback_data_over_64_bytes_is_refused(bot: Bot) -> None:
    await bot.send_message(ALICE.id, "ok", reply_markup=keyboard("d" * CALLBACK_DATA_LIMIT))
    data = "退" * 22  # 22 characters, 66 bytes of UTF-8
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(ALICE.id, "no", reply_markup=keyboard(data))


async def test_more_than_100_inline_buttons_are_refused(bot: Bot) -> None:
    await bot.send_message(ALICE.id, "ok", reply_markup=keyboard(*[str(i) for i in range(100)]))
    with pytest.raises(BadRequest, match="Reply_markup_too_long"):
        await bot.send_message(ALICE.id, "no", reply_markup=keyboard(*[str(i) for i in range(101)]))


async def test_callback_answer_over_200_characters_is_refused(bot: Bot) -> None:
    await bot.answer_callback_query("cq1", "a" * 200)
    with pytest.raises(BadRequest, match="Message_too_long"):
        await bot.answer_callback_query("cq2", "a" * 201)


async def test_a_documents_file_id_is_refused_by_send_photo(bot: Bot, tg: FakeTelegram) -> None:
    up = Updates(tg=tg)
    up.document(ALICE, "doc-1", "scan.jpg", "image/jpeg")  # an image sent as a file
    up.photo(ALICE, "photo-1")
    await bot.send_document(DESK, "doc-1")
    await bot.send_photo(DESK, "photo-1")
    await bot.send_photo(DESK, "never-seen")  # an id the fake does not know is taken as valid
    with pytest.raises(BadRequest, match=r"(?i)can't use file of type document as photo"):
        await bot.send_photo(DESK, "doc-1")


async def test_downloads_over_20_mb_are_refused(bot: Bot, tg: FakeTelegram) -> None:
    tg.add_file("small", b"%PDF-1.7 ...")
    tg.add_file("big", size=DOWNLOAD_LIMIT + 1)
    small = await bot.get_file("small")
    assert small.file_size == 12
    assert bytes(await small.download_as_bytearray()) == b"%PDF-1.7 ..."
    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file("big")
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("unknown")


def test_refusal_is_none_for_what_telegram_accepts() -> None:
    url = {"inline_keyboard": [[{"text": "site", "url": "https://example.com"}]]}
    assert refusal("sendMessage", {"chat_id": 1, "text": "hi", "reply_markup": url}) is None
    bare = {"inline_keyboard": [[{"text": "nothing to do"}]]}
    assert refusal("sendMessage", {"chat_id": 1, "text": "hi", "reply_markup": bare}) is not None
    assert refusal("createForumTopic", {"chat_id": -1, "name": "n" * 129}) is not None


# -- what Telegram answers ---------------------------------------------------------------------


async def test_message_ids_increase_per_chat_shared_with_the_users(
    bot: Bot, tg: FakeTelegram
) -> None:
    up = Updates(tg=tg)
    first = await bot.send_message(ALICE.id, "1")
    incoming = up.text(ALICE, "hello")["message"]["message_id"]
    second = await bot.send_message(ALICE.id, "2")
    other = await bot.send_message(BOB.id, "1")
    assert (first.message_id, incoming, second.message_id) == (1, 2, 3)
    assert other.message_id == 1


async def test_forum_topics_copies_and_edits(bot: Bot, tg: FakeTelegram) -> None:
    topic = await bot.create_forum_topic(DESK, "T20261124-0001 · 张三")
    card = await bot.send_message(
        DESK, "card", message_thread_id=topic.message_thread_id, reply_markup=keyboard("d:1")
    )
    assert card.message_thread_id == topic.message_thread_id and card.is_topic_message
    copy = await bot.copy_message(DESK, ALICE.id, 7, message_thread_id=topic.message_thread_id)
    assert copy.message_id > card.message_id
    await bot.edit_forum_topic(DESK, topic.message_thread_id, name="T20261124-0001 · 已退款")
    assert [t["name"] for t in tg.topics] == ["T20261124-0001 · 已退款"]
    await bot.edit_message_reply_markup(DESK, card.message_id, reply_markup=None)
    assert tg.with_buttons(DESK) == []
    await bot.close_forum_topic(DESK, topic.message_thread_id)
    await bot.delete_forum_topic(DESK, topic.message_thread_id)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(DESK, "late", message_thread_id=topic.message_thread_id)


async def test_media_carry_their_file_ids(bot: Bot) -> None:
    photo = await bot.send_photo(DESK, "photo-1", caption="证据")
    assert photo.photo[-1].file_id == "photo-1" and photo.caption == "证据"
    document = await bot.send_document(DESK, "doc-1")
    assert document.document is not None and document.document.file_id == "doc-1"
    album = await bot.send_media_group(DESK, [InputMediaPhoto("p1"), InputMediaPhoto("p2")])
    assert [m.photo[-1].file_id for m in album] == ["p1", "p2"]


# -- switches ----------------------------------------------------------------------------------


async def test_429_for_one_chat_leaves_the_others_alone(
    bot: Bot, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # RetryAfter's seconds as a timedelta, no warning
    tg.fail(None, Failure.flood(3), chat_id=ALICE.id, times=2)
    await bot.send_message(BOB.id, "fine")
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ALICE.id, "too fast")
        assert caught.value.retry_after.total_seconds() == 3
    await bot.send_message(ALICE.id, "later")
    assert [c.error for c in tg.calls if c.method == "sendMessage"] == [
        None,
        "Too Many Requests: retry after 3",
        "Too Many Requests: retry after 3",
        None,
    ]


async def test_bot_wide_server_errors_until_cleared(bot: Bot, tg: FakeTelegram) -> None:
    tg.fail(None, Failure.server_error(502), times=None)
    for chat in (ALICE.id, BOB.id):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(chat, "hi")
    tg.clear_failures()
    await bot.send_message(ALICE.id, "hi")


async def test_a_held_call_waits_for_its_release(bot: Bot, tg: FakeTelegram) -> None:
    gate = tg.hold("sendMessage", chat_id=ALICE.id)
    held = asyncio.create_task(bot.send_message(ALICE.id, "held"))
    await tg.until(lambda: len(tg.texts(ALICE.id)) == 1)
    await bot.send_message(BOB.id, "goes through")
    assert not held.done()
    gate.release()
    assert (await asyncio.wait_for(held, 1)).text == "held"


def test_an_update_python_telegram_bot_cannot_parse() -> None:
    with pytest.raises(TypeError):
        Update.de_json(Updates().unparsable(ALICE), None)
