"""An offline Telegram for testing the bot, shipped in the package the way httpx ships
`MockTransport`: the dialogue-test runner (`refund-bot dialogues`), the test suite, the reliability
tests and the benchmark all use this one.

- `FakeTelegram`: a python-telegram-bot `BaseRequest` answering the Bot API as Telegram does
  (message ids per chat, forum topics, copies, media by file id, getFile and downloads, edits,
  callback answers) and refusing what Telegram refuses (`refusal`: long texts and captions,
  callback data over 64 bytes, over 100 inline buttons, a document's id to sendPhoto, downloads
  over 20 MB). Failures and gates are opt-in: `fail` (e.g. `Failure.flood(retry_after)` for one
  chat or the whole bot, a 5xx, the next N calls of a method) and `hold` (until released).
- `Updates`: raw update JSON of what users do (messages, commands, presses, contacts, photos,
  documents, albums, group and topic messages, edits, an update PTB cannot parse).
- `Harness`: the real App (engine + store) and PTB Application on the fake, fed that JSON.
- `FakeBotApiServer`: the fake served over loopback HTTP as a stand-in Bot API server, for a
  real `refund-bot run` process (`telegram.base_url`).

Nothing here imports pytest."""

from bot.testing._chats import BOT_ID, BOT_USER, DESK_TITLE, TOKEN, User, chat_of, supergroup
from bot.testing._harness import Harness
from bot.testing._limits import (
    ANSWER_LIMIT,
    CALLBACK_DATA_LIMIT,
    CAPTION_LIMIT,
    DOWNLOAD_LIMIT,
    INLINE_BUTTONS_LIMIT,
    TEXT_LIMIT,
    TOPIC_NAME_LIMIT,
    refusal,
    utf16_length,
)
from bot.testing._server import FakeBotApiServer
from bot.testing._transport import (
    WAIT,
    Call,
    Failure,
    FakeFile,
    FakeTelegram,
    Gate,
    Shown,
    inline_buttons,
    labels,
    message_text,
    reply_keyboard,
)
from bot.testing._updates import DEMO_PHONE, Updates

__all__ = [
    "ANSWER_LIMIT",
    "BOT_ID",
    "BOT_USER",
    "CALLBACK_DATA_LIMIT",
    "CAPTION_LIMIT",
    "DEMO_PHONE",
    "DESK_TITLE",
    "DOWNLOAD_LIMIT",
    "INLINE_BUTTONS_LIMIT",
    "TEXT_LIMIT",
    "TOKEN",
    "TOPIC_NAME_LIMIT",
    "WAIT",
    "Call",
    "Failure",
    "FakeBotApiServer",
    "FakeFile",
    "FakeTelegram",
    "Gate",
    "Harness",
    "Shown",
    "Updates",
    "User",
    "chat_of",
    "inline_buttons",
    "labels",
    "message_text",
    "refusal",
    "reply_keyboard",
    "supergroup",
    "utf16_length",
]
