"""Engine replies as Telegram messages: text split under the limit, keyboards from buttons.

Keyboards are built as Bot API JSON (what `InlineKeyboardMarkup(...).to_dict()` gives), not as
python-telegram-bot objects: the outbox sends them as they are (see _api.py), and building and
serialising the objects again for every message was a fifth of a turn's cost."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.engine import Button, Reply

TEXT_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)
CAPTION_LIMIT = int(MessageLimit.CAPTION_LENGTH)
CALLBACK_DATA_LIMIT = int(InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)
# two buttons share a row when both labels are at most this wide (a CJK character counts 2):
# "转人工客服 | 取消" fits a phone screen, "7-day no-reason return" wants a row of its own
SHORT_LABEL_WIDTH = 16
REMOVE_REPLY_KEYBOARD: dict[str, Any] = {"remove_keyboard": True}

Markup = dict[str, Any]  # a reply_markup in Bot API JSON


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One sendMessage call."""

    text: str
    reply_markup: Markup | None = None


def render(reply: Reply, *, remove_reply_keyboard: bool = False) -> list[Outgoing]:
    """The messages of one reply: the keyboard goes under the last part of a split text."""
    # `remove_reply_keyboard` takes away a contact keyboard still shown, on a reply without buttons
    # only: Telegram allows one markup per message, and buttons of its own come first
    parts = split_text(reply.text)
    markup = keyboard(reply.buttons)
    if markup is None and remove_reply_keyboard:
        markup = REMOVE_REPLY_KEYBOARD
    return [Outgoing(part, markup if i == len(parts) - 1 else None) for i, part in enumerate(parts)]


def copy_caption(reply: Reply) -> tuple[str | None, list[Outgoing]]:
    """A copied message's caption, and the messages sent right after it: a file carries its own
    caption (cut to fit) and the reply's text (the signature) below it; a sticker or a location
    cannot, and is signed by a message of its own."""
    copy = reply.copy
    assert copy is not None
    if not copy.captionable:
        return None, render(Reply(reply.key, reply.text)) if reply.text.strip() else []
    signature = reply.text
    if not copy.caption:
        return signature or None, []
    room = max(CAPTION_LIMIT - text_length(signature) - 2, 0)
    return f"{_cut_line(copy.caption, room)[0]}\n\n{signature}", []


def keyboard(buttons: Sequence[Button]) -> Markup | None:
    """Inline buttons; a contact request turns the whole keyboard into a one-time reply keyboard."""
    # Telegram asks for the phone number only from a reply keyboard, and a message has a single
    # keyboard: the other buttons become reply buttons that send their label, which the engine
    # matches against the current prompt's buttons as if they were pressed.
    if not buttons:
        return None
    if any(b.request_contact for b in buttons):
        return {
            "keyboard": [
                [
                    {"text": b.label, "request_contact": True}
                    if b.request_contact
                    else {"text": b.label}
                    for b in row
                ]
                for row in _rows(buttons)
            ],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        }
    for b in buttons:
        if not b.token or len(b.token.encode()) > CALLBACK_DATA_LIMIT:
            raise ValueError(f"button {b.label!r}: callback data must be 1-64 bytes: {b.token!r}")
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": b.token} for b in row] for row in _rows(buttons)
        ]
    }


def has_contact_request(reply: Reply) -> bool:
    return any(b.request_contact for b in reply.buttons)


def _rows(buttons: Sequence[Button]) -> list[list[Button]]:
    """One button per row, or two short ones side by side (in their order)."""
    rows: list[list[Button]] = []
    for b in buttons:
        last = rows[-1] if rows else None
        if (
            last is not None
            and len(last) == 1
            and not last[0].request_contact
            and not b.request_contact
            and label_width(last[0].label) <= SHORT_LABEL_WIDTH
            and label_width(b.label) <= SHORT_LABEL_WIDTH
        ):
            last.append(b)
        else:
            rows.append([b])
    return rows


@lru_cache(maxsize=4096)  # labels come from the catalogs and orders: a few hundred recur
def label_width(label: str) -> int:
    """Display width: wide (CJK) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in label)


def text_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of at most `limit` characters, cut at line ends (inside a line only when too long)."""
    if text_length(text) <= limit:
        return [text]
    parts: list[str] = []
    lines: list[str] = []
    size = 0  # of "\n".join(lines)
    for line in text.split("\n"):
        for piece in _cut_line(line, limit):
            piece_size = text_length(piece)
            if lines and size + 1 + piece_size > limit:
                parts.append("\n".join(lines))
                lines, size = [], 0
            size += piece_size + (1 if lines else 0)
            lines.append(piece)
    parts.append("\n".join(lines))
    # Telegram refuses an empty or blank message: blank stretches at a cut are dropped
    return [p for p in (part.strip("\n") for part in parts) if p.strip()]


def _cut_line(line: str, limit: int) -> list[str]:
    """A line longer than the limit, in pieces (no line end to cut at)."""
    pieces: list[str] = []
    start, size = 0, 0
    for i, char in enumerate(line):
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > limit:
            pieces.append(line[start:i])
            start, size = i, 0
        size += width
    pieces.append(line[start:])
    return pieces
