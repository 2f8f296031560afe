"""The adapter's pure parts: parsing updates, rendering replies, the flood limit, file checks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.warnings import PTBUserWarning

from bot.domain import EvidenceKind
from bot.engine import Button, Copy, Kind, Reply
from bot.telegram import (
    IncomingLimit,
    Verdict,
    bytes_match,
    document_kind,
    keyboard,
    parse_update,
    render,
    split_text,
)
from bot.telegram._api import quiet_typed_method_warning, remove_inline_keyboard, send_text
from bot.telegram._render import CAPTION_LIMIT, copy_caption, text_length
from bot.testing import TOKEN, Updates
from tests.telegram.support import ALICE, GROUP, ShopHarness

BOT = Bot(TOKEN)
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def parse(data: dict[str, Any]) -> Any:
    return parse_update(Update.de_json(data, BOT))


# -- parsing ---------------------------------------------------------------------------------


def test_text_command_and_language() -> None:
    up = Updates()
    text = parse(up.text(ALICE, "我的年卡不能用了"))
    assert text.inbound.kind is Kind.TEXT
    assert text.inbound.text == "我的年卡不能用了"
    assert text.inbound.key.channel == "telegram" and text.inbound.key.user_id == "1001"
    assert text.inbound.sender_id == 1001 and text.inbound.language_code == "en"
    assert text.inbound.dedupe_key == f"tg:{text.update_id}"
    command = parse(up.text(ALICE, "/Refund@xiaonian_refund_bot now"))
    assert (command.inbound.kind, command.inbound.command) == (Kind.COMMAND, "refund")
    assert parse(up.text(ALICE, "/ 50")).inbound.kind is Kind.TEXT


def test_press_carries_the_callback_data_as_token() -> None:
    press = parse(Updates().press(ALICE, "a1b2c3.4"))
    assert press.is_press
    assert (press.inbound.kind, press.inbound.token) == (Kind.BUTTON, "a1b2c3.4")


def test_largest_photo_size_is_taken() -> None:
    photo = parse(Updates().photo(ALICE, "big", size=900_000, album="g1"))
    (info,) = photo.inbound.files
    assert (info.kind, info.file_id, info.size_bytes) == (EvidenceKind.PHOTO, "big", 900_000)
    assert photo.media_group_id == "g1"


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("application/pdf", EvidenceKind.PDF),
        ("image/png", EvidenceKind.PHOTO),
        ("image/jpeg", EvidenceKind.PHOTO),
        ("video/mp4", EvidenceKind.VIDEO),
        ("application/zip", EvidenceKind.DOCUMENT),
        (None, EvidenceKind.DOCUMENT),
    ],
)
def test_document_kind_by_mime_type(mime: str | None, kind: EvidenceKind) -> None:
    assert document_kind(mime) is kind


def test_document_without_mime_type_is_guessed_from_its_name() -> None:
    data = Updates().document(ALICE, "d", "receipt.pdf", "application/pdf")
    del data["message"]["document"]["mime_type"]
    (info,) = parse(data).inbound.files
    assert (info.kind, info.mime_type, info.file_name) == (
        EvidenceKind.PDF,
        "application/pdf",
        "receipt.pdf",
    )


def test_video_is_evidence() -> None:
    video = {
        "file_id": "v",
        "file_unique_id": "uv",
        "width": 1,
        "height": 1,
        "duration": 3,
        "file_size": 10,
    }
    (info,) = parse(Updates().message(ALICE, video=video, caption="录屏")).inbound.files
    assert (info.kind, info.caption) == (EvidenceKind.VIDEO, "录屏")


def test_silence_outside_private_chats_and_for_edits_and_bots() -> None:
    up = Updates()
    assert parse(up.text(ALICE, "hi", chat=GROUP)) is None
    assert parse(up.press(ALICE, "x.0", chat=GROUP)) is None
    edited = up.text(ALICE, "hi")
    edited["edited_message"] = edited.pop("message")
    assert parse(edited) is None
    robot = up.text(ALICE, "hi")
    robot["message"]["from"]["is_bot"] = True
    assert parse(robot) is None


def test_a_sticker_is_no_answer_but_still_a_turn() -> None:
    sticker = {
        "file_id": "s",
        "file_unique_id": "us",
        "type": "regular",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
    }
    incoming = parse(Updates().message(ALICE, sticker=sticker))
    assert (incoming.inbound.kind, incoming.inbound.text) == (Kind.TEXT, "")


# -- rendering -------------------------------------------------------------------------------


def test_inline_keyboard_pairs_short_labels_and_keeps_long_ones_alone() -> None:
    buttons = (
        Button("7-day no-reason return", "n.0"),
        Button("转人工客服", "n.1"),
        Button("取消", "n.2"),
        Button("Back", "n.3"),
    )
    markup = keyboard(buttons)
    assert markup is not None
    rows = [[(b["text"], b["callback_data"]) for b in row] for row in markup["inline_keyboard"]]
    assert rows == [
        [("7-day no-reason return", "n.0")],
        [("转人工客服", "n.1"), ("取消", "n.2")],
        [("Back", "n.3")],
    ]
    # the JSON is exactly what python-telegram-bot's own objects would have sent
    typed = InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )
    assert markup == typed.to_dict()


def test_callback_data_over_64_bytes_is_a_bug_caught_before_sending() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        keyboard((Button("ok", "令" * 22),))  # 66 bytes of UTF-8


def test_contact_request_becomes_a_one_time_reply_keyboard() -> None:
    markup = keyboard(
        (Button("📱 分享手机号", request_contact=True), Button("用订单号验证", "t.1"))
    )
    typed = ReplyKeyboardMarkup(
        [[KeyboardButton("📱 分享手机号", request_contact=True)], [KeyboardButton("用订单号验证")]],
        one_time_keyboard=True,
        resize_keyboard=True,
    )
    assert markup == typed.to_dict()
    assert markup["one_time_keyboard"] is True


def test_remove_keyboard_only_on_a_reply_without_buttons() -> None:
    (plain,) = render(Reply("k", "已验证"), remove_reply_keyboard=True)
    assert plain.reply_markup == ReplyKeyboardRemove().to_dict()
    (with_buttons,) = render(Reply("k", "菜单", (Button("a", "t.0"),)), remove_reply_keyboard=True)
    assert with_buttons.reply_markup == {
        "inline_keyboard": [[{"text": "a", "callback_data": "t.0"}]]
    }


def test_a_long_reply_is_split_on_lines_with_the_keyboard_under_the_last_part() -> None:
    lines = [f"{i:04d} " + "时间线" * 100 for i in range(40)]  # 305 characters each: 13 a part
    parts = render(Reply("status.detail", "\n".join(lines), (Button("返回", "t.0"),)))
    assert len(parts) == 4
    assert all(text_length(p.text) <= 4096 for p in parts)
    assert [p.text.count("\n") + 1 for p in parts] == [13, 13, 13, 1]  # cut at line ends only
    assert "\n".join(p.text for p in parts) == "\n".join(lines)
    assert [p.reply_markup is not None for p in parts] == [False, False, False, True]


@given(
    st.text(alphabet=st.sampled_from(["a", "中", "\n", "😀", " "]), max_size=400),
    st.integers(2, 50),
)
def test_split_text_keeps_every_visible_character_under_the_limit(text: str, limit: int) -> None:
    assume(text.strip())  # the engine never sends a blank message
    parts = split_text(text, limit)
    assert all(0 < text_length(p) <= limit and p.strip() for p in parts)

    def visible(s: str) -> str:
        return "".join(s.split())

    assert visible("".join(parts)) == visible(text)  # only blank stretches at a cut may go


# -- flood limit and file checks -------------------------------------------------------------


def test_incoming_limit_warns_once_then_drops_until_the_minute_has_room() -> None:
    now = [0.0]
    limit = IncomingLimit(2, lambda: now[0])
    assert [limit.check(1) for _ in range(5)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
        Verdict.DROP,
    ]
    assert limit.check(2) is Verdict.ALLOW  # per customer
    now[0] = 60.5
    assert [limit.check(1) for _ in range(4)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
    ]


def test_incoming_limit_forgets_quiet_customers_once_a_minute() -> None:
    now = [0.0]
    limit = IncomingLimit(2, lambda: now[0])
    for user in range(50):
        limit.check(user)
    limit.check(99)
    limit.check(99)
    assert limit.check(99) is Verdict.WARN
    now[0] = 30.0
    limit.check(100)
    assert len(limit) == 52  # nobody has been quiet for a minute yet
    now[0] = 61.0
    assert limit.check(100) is Verdict.ALLOW
    assert len(limit) == 1  # the sweep: only the customer heard within the last minute is left
    assert limit.check(99) is Verdict.ALLOW  # a forgotten customer starts from scratch


@pytest.mark.parametrize(
    ("kind", "data", "ok"),
    [
        (EvidenceKind.PDF, b"%PDF-1.4 ...", True),
        (EvidenceKind.PDF, b"\xef\xbb\xbf%PDF-1.4", True),  # junk before the header is allowed
        (EvidenceKind.PDF, b"<html>not a pdf", False),
        (EvidenceKind.PHOTO, b"\xff\xd8\xff\xe0JFIF", True),
        (EvidenceKind.PHOTO, b"\x89PNG\r\n\x1a\n....", True),
        (EvidenceKind.PHOTO, b"GIF89a", False),
        (EvidenceKind.DOCUMENT, b"anything", True),
    ],
)
def test_bytes_match_the_declared_type(kind: EvidenceKind, data: bytes, ok: bool) -> None:
    assert bytes_match(kind, data) is ok


# -- configuration ---------------------------------------------------------------------------


def test_telegram_settings_are_validated_and_the_download_folder_is_relative_to_the_file(
    tmp_path: Path,
) -> None:
    from bot.config import ConfigError, load_config

    path = tmp_path / "config.yaml"
    path.write_text(REPO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    overrides = {"telegram": {"evidence_download_dir": "var/evidence"}}
    config = load_config(path, overrides)
    assert config.telegram.evidence_download_dir == tmp_path / "var" / "evidence"
    assert config.telegram.incoming_rate_limit == 20
    with pytest.raises(ConfigError, match=r"telegram.incoming_rate_limit: must be ≥ 1"):
        load_config(path, {"telegram": {"incoming_rate_limit": 0}})
    with pytest.raises(ConfigError, match=r"telegram.album_wait_seconds: must be > 0"):
        load_config(path, {"telegram": {"album_wait_seconds": 0}})


async def test_the_raw_bot_api_calls_warn_nothing_once_quieted(harness: ShopHarness) -> None:
    # pyproject's filterwarnings covers the tests; this is what build_bot does for `run`
    bot = harness.application.bot
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PTBUserWarning):
            await send_text(bot, ALICE.id, "before")
        quiet_typed_method_warning()
        message_id = await send_text(bot, ALICE.id, "after", {"remove_keyboard": True})
        await remove_inline_keyboard(bot, ALICE.id, message_id)
    assert harness.tg.texts(ALICE.id) == ["after"]
    assert harness.tg.of("editMessageReplyMarkup")[-1]["message_id"] == message_id


# -- copies of the agents' messages: the caption is Telegram's business ------------------------


def test_a_copied_file_keeps_its_caption_and_is_signed_within_the_caption_limit() -> None:
    signature = "—— 客服 王五"
    short = Reply("handoff.signature", signature, copy=Copy(-100, 12, "示例截图"))
    assert copy_caption(short) == (f"示例截图\n\n{signature}", [])
    long = Reply("handoff.signature", signature, copy=Copy(-100, 12, "长" * 2000))
    caption, after = copy_caption(long)
    assert caption is not None and after == []
    assert text_length(caption) == CAPTION_LIMIT and caption.endswith(f"\n\n{signature}")
    bare = Reply("handoff.signature", signature, copy=Copy(-100, 12, None))
    assert copy_caption(bare) == (signature, [])


def test_a_copied_sticker_is_signed_by_a_message_after_it() -> None:
    sticker = Reply("handoff.signature", "—— 客服 王五", copy=Copy(-100, 13, captionable=False))
    caption, after = copy_caption(sticker)
    assert caption is None and [o.text for o in after] == ["—— 客服 王五"]


def test_an_outbox_row_written_before_captions_moved_still_renders_as_it_did() -> None:
    legacy = {
        "key": "handoff.signature",
        "text": "示例截图\n\n—— 客服 王五",
        "buttons": [],
        "copy": {"from_chat_id": -100, "message_id": 12},
    }
    assert copy_caption(Reply.from_payload(legacy)) == ("示例截图\n\n—— 客服 王五", [])
    assert Reply.from_payload(Reply.from_payload(legacy).to_payload()) == Reply.from_payload(legacy)
