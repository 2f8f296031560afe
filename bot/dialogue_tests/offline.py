"""Offline Telegram for the dialogue runner: a fake Bot API transport that records every call and
answers like Telegram (forum topics included), and builders of raw update JSON.

It lives under bot/ (not tests/) because `refund-bot dialogues` runs outside the test suite. It
holds only what scripted dialogues need; tests/telegram/offline.py keeps its own extras (queued
failures, send gates, getUpdates answers, file downloads) and could subclass this transport.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

BOT_ID = 123456
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "小年卡盟退款助手",
    "username": "xiaonian_refund_bot",
}
DESK_TITLE = "小年卡盟客服台"
# Methods whose answer is a Message (or, for sendMediaGroup, a list of them).
_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAnimation",
        "sendAudio",
        "sendVoice",
        "sendSticker",
        "sendContact",
        "sendLocation",
        "forwardMessage",
    }
)
_EDIT_METHODS = frozenset(
    {"editMessageText", "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia"}
)


@dataclass
class Call:
    """One Bot API request the bot made, and what the fake answered."""

    method: str
    params: dict[str, Any]
    result: Any = None


@dataclass
class Shown:
    """A message as the chat shows it now: its text and the buttons still under it."""

    chat_id: int
    message_id: int
    text: str
    thread_id: int | None
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (label, callback_data)
    # (label, request_contact) of a reply keyboard: its buttons send their label as text
    reply_keyboard: list[tuple[str, bool]] = field(default_factory=list)
    sent_buttons: list[tuple[str, str]] = field(default_factory=list)  # before any edit
    seq: int = 0  # when it was sent or last given buttons: the latest wins


def chat_of(chat_id: int) -> dict[str, Any]:
    """The chat object Telegram would put in a message: private for users, a forum otherwise."""
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "客户"}
    return {"id": chat_id, "type": "supergroup", "title": DESK_TITLE, "is_forum": True}


def inline_buttons(markup: Any) -> list[tuple[str, str]]:
    """(label, callback_data) of an inline keyboard as sent in a request."""
    if not isinstance(markup, dict):
        return []
    return [
        (str(b["text"]), str(b.get("callback_data", "")))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


def reply_keyboard(markup: Any) -> list[tuple[str, bool]]:
    """(label, request_contact) of a reply keyboard (a contact request makes the keyboard one)."""
    if not isinstance(markup, dict):
        return []
    return [
        (str(b["text"]), bool(b.get("request_contact")))
        for row in markup.get("keyboard", [])
        for b in row
    ]


def labels(markup: Any) -> list[str]:
    """The labels of whatever keyboard a request carries."""
    return [label for label, _ in inline_buttons(markup)] + [
        label for label, _ in reply_keyboard(markup)
    ]


def message_text(params: dict[str, Any]) -> str:
    """What a sent message shows as text: its text, a caption, or a marker for bare media."""
    for name in ("text", "caption"):
        if params.get(name):
            return str(params[name])
    if "media" in params:
        return " ".join(f"[{m.get('type', 'media')}]" for m in params["media"])
    for kind in ("photo", "document", "video", "audio", "voice", "contact"):
        if kind in params:
            return f"[{kind}]"
    return ""


class FakeTelegram(BaseRequest):
    """Answers the Bot API methods the bot uses and records every call, like PTB's own tests.

    Message ids and forum topic ids come from one counter, as in Telegram, where a topic's id is
    the id of the service message that opened it."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.calls: list[Call] = []
        self._now = now
        self._ids = itertools.count(1000)
        self._seq = itertools.count(1)
        self.shown: dict[tuple[int, int], Shown] = {}  # (chat, message id) -> what it shows
        self.topics: list[dict[str, Any]] = []  # createForumTopic answers, oldest first
        # (chat, message id) -> text of messages users sent, so a copy shows what it copied
        self.originals: dict[tuple[int, int], str] = {}

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        if method == "GET":  # a file download: dialogue tests keep evidence_download_dir off
            body = {"ok": False, "error_code": 404, "description": "Not Found: offline"}
            return 404, json.dumps(body).encode()
        params = dict(request_data.parameters) if request_data is not None else {}
        call = Call(name, params)
        self.calls.append(call)
        call.result = self._result(name, params)
        self._remember(call)
        return 200, json.dumps({"ok": True, "result": call.result}).encode()

    # -- answers ----------------------------------------------------------------------------

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": message_id or next(self._ids),
            "date": int(self._now().timestamp()),
            "chat": chat_of(chat_id),
            "from": BOT_USER,
        }
        thread = params.get("message_thread_id")
        if thread is not None:
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
        text = message_text(params)
        if text:
            message["caption" if "caption" in params else "text"] = text
        if "reply_markup" in params and "inline_keyboard" in (params["reply_markup"] or {}):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return {
                **BOT_USER,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if name in _MESSAGE_METHODS:
            return self._message(params)
        if name == "sendMediaGroup":
            return [self._message({**params, "media": [m]}) for m in params.get("media", [])]
        if name == "copyMessage":
            return {"message_id": next(self._ids)}
        if name in ("copyMessages", "forwardMessages"):
            return [{"message_id": next(self._ids)} for _ in params.get("message_ids", [])]
        if name in _EDIT_METHODS:
            if "inline_message_id" in params:
                return True
            return self._message(params, int(params["message_id"]))
        if name == "createForumTopic":
            topic = {
                "message_thread_id": next(self._ids),
                "name": str(params.get("name", "")),
                "icon_color": int(params.get("icon_color", 7322096)),
            }
            self.topics.append(topic)
            return topic
        if name == "getChat":
            chat_id = int(params["chat_id"])
            return {
                **chat_of(chat_id),
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                },
            }
        # answerCallbackQuery, setMyCommands, deleteMessage, closeForumTopic, pinChatMessage...
        return True

    def _remember(self, call: Call) -> None:
        """Keep what each chat shows: a new message with its buttons, an edit of the buttons."""
        params, result = call.params, call.result
        if call.method in _MESSAGE_METHODS and isinstance(result, dict):
            markup = params.get("reply_markup")
            key = (int(params["chat_id"]), int(result["message_id"]))
            if isinstance(markup, dict) and ("keyboard" in markup or "remove_keyboard" in markup):
                # a new reply keyboard replaces the old one, and remove_keyboard takes it away
                for other in self.shown.values():
                    if other.chat_id == key[0]:
                        other.reply_keyboard = []
            self.shown[key] = Shown(
                key[0],
                key[1],
                message_text(params),
                result.get("message_thread_id"),
                inline_buttons(markup),
                reply_keyboard(markup),
                inline_buttons(markup),
                next(self._seq),
            )
        elif call.method in _EDIT_METHODS and "message_id" in params:
            edited = self.shown.get((int(params["chat_id"]), int(params["message_id"])))
            if edited is None:
                return
            if call.method in ("editMessageText", "editMessageCaption"):
                edited.text = message_text(params) or edited.text
            # an edit without reply_markup takes the inline keyboard away
            edited.buttons = inline_buttons(params.get("reply_markup"))
            if edited.buttons:
                edited.sent_buttons = list(edited.buttons)
                edited.seq = next(self._seq)

    # -- what the runner reads --------------------------------------------------------------

    def remember_incoming(self, update: dict[str, Any]) -> None:
        """Note what a user's message said (the bot may copy it elsewhere, e.g. to the desk)."""
        message = update.get("message")
        if isinstance(message, dict):
            key = (int(message["chat"]["id"]), int(message["message_id"]))
            self.originals[key] = message_text(message)

    def text_of(self, call: Call) -> str:
        """What a call put in a chat: its text or caption, or the text of the message it copied."""
        params = call.params
        if call.method in ("copyMessage", "forwardMessage"):
            key = (int(params.get("from_chat_id", 0)), int(params.get("message_id", 0)))
            copied = self.originals.get(key, "")
            return message_text(params) or copied
        return message_text(params)

    def since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    def with_buttons(self, chat_id: int, thread_id: int | None = None) -> list[Shown]:
        """The chat's messages that still show buttons, latest first (optionally in one topic)."""
        found = [
            s
            for s in self.shown.values()
            if s.chat_id == chat_id
            and (s.buttons or s.reply_keyboard)
            and (thread_id is None or s.thread_id == thread_id)
        ]
        return sorted(found, key=lambda s: s.seq, reverse=True)

    def every_message(self, chat_id: int) -> list[Shown]:
        """Every message sent to the chat, latest first (stale presses look here)."""
        found = [s for s in self.shown.values() if s.chat_id == chat_id]
        return sorted(found, key=lambda s: s.message_id, reverse=True)


# -- raw updates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TgUser:
    id: int
    first_name: str = "张三"
    language_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def private_chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


@dataclass(frozen=True)
class Place:
    """Where a message is posted: a chat, and a forum topic in it (None: the chat itself)."""

    chat: dict[str, Any]
    thread_id: int | None = None

    def fields(self) -> dict[str, Any]:
        if self.thread_id is None:
            return {"chat": self.chat}
        # Telegram shows every message of a topic as a reply to the topic's opening message
        opening = {
            "message_id": self.thread_id,
            "date": 0,
            "chat": self.chat,
            "message_thread_id": self.thread_id,
            "forum_topic_created": {"name": "", "icon_color": 7322096},
        }
        return {
            "chat": self.chat,
            "message_thread_id": self.thread_id,
            "is_topic_message": True,
            "reply_to_message": opening,
        }


class Updates:
    """Raw Bot API update JSON, as Telegram would post it (dated by the script's clock)."""

    def __init__(self, now: Callable[[], datetime], first_id: int = 5000) -> None:
        self._now = now
        self._update_ids = itertools.count(first_id)
        self._message_ids = itertools.count(1)

    def _date(self) -> int:
        return int(self._now().timestamp())

    def message(self, user: TgUser, place: Place | None = None, **fields: Any) -> dict[str, Any]:
        where = place.fields() if place is not None else {"chat": user.private_chat()}
        return {
            "update_id": next(self._update_ids),
            "message": {
                "message_id": next(self._message_ids),
                "date": self._date(),
                **where,
                "from": user.as_dict(),
                **fields,
            },
        }

    def text(self, user: TgUser, text: str, place: Place | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"text": text}
        command = text.split(maxsplit=1)[0] if text.startswith("/") else ""
        if command:
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.message(user, place, **fields)

    def forwarded(self, user: TgUser, original: TgUser, **fields: Any) -> dict[str, Any]:
        origin = {"type": "user", "date": self._date() - 3600, "sender_user": original.as_dict()}
        return self.message(user, forward_origin=origin, **fields)

    @staticmethod
    def contact_fields(phone: str, owner: int | None, first_name: str) -> dict[str, Any]:
        contact: dict[str, Any] = {"phone_number": phone.lstrip("+"), "first_name": first_name}
        if owner is not None:
            contact["user_id"] = owner
        return {"contact": contact}

    @staticmethod
    def photo_fields(name: str, size: int, caption: str | None) -> dict[str, Any]:
        # Telegram sends every size of a photo; the bot keeps the largest
        sizes = [
            {"file_id": f"{name}-s", "file_unique_id": f"{name}-us", "width": 90, "height": 160},
            {
                "file_id": name,
                "file_unique_id": f"u-{name}",
                "width": 1080,
                "height": 1920,
                "file_size": size,
            },
        ]
        fields: dict[str, Any] = {"photo": sizes}
        if caption:
            fields["caption"] = caption
        return fields

    @staticmethod
    def document_fields(
        file_id: str, file_name: str, mime: str | None, size: int, caption: str | None
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_name": file_name,
            "file_size": size,
        }
        if mime:
            document["mime_type"] = mime
        fields: dict[str, Any] = {"document": document}
        if caption:
            fields["caption"] = caption
        return fields

    def press(
        self, user: TgUser, data: str, shown: Shown | None, place: Place | None = None
    ) -> dict[str, Any]:
        """A callback query on a message (the one that showed the button, or a made-up one)."""
        update_id = next(self._update_ids)
        where = place.fields() if place is not None else {"chat": user.private_chat()}
        message: dict[str, Any] = {
            "message_id": shown.message_id if shown is not None else 1,
            "date": self._date(),
            **where,
            "from": BOT_USER,
            "text": shown.text if shown is not None else "…",
        }
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"cq{update_id}",
                "from": user.as_dict(),
                "chat_instance": f"ci{where['chat']['id']}",
                "data": data,
                "message": message,
            },
        }
