"""The fake Bot API: a python-telegram-bot `BaseRequest` that answers as Telegram does, refuses
what Telegram refuses, records every call, and fails or holds calls when a test asks it to."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from bot.testing._chats import BOT_USER, chat_of
from bot.testing._limits import DOWNLOAD_LIMIT, refusal

WAIT = 5.0  # seconds: the bound of every wait (a held call, `until`)

# Methods whose answer is a Message (sendMediaGroup: a list of them).
MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAnimation",
        "sendAudio",
        "sendVoice",
        "sendVideoNote",
        "sendSticker",
        "sendContact",
        "sendLocation",
        "forwardMessage",
    }
)
EDIT_METHODS = frozenset(
    {"editMessageText", "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia"}
)
_MEDIA = ("sendPhoto", "sendDocument", "sendVideo")


@dataclass
class Call:
    """One Bot API request the bot made, and what the fake answered."""

    method: str  # Bot API method, or "GET" for a file download
    params: dict[str, Any]
    url: str = ""
    result: Any = None  # what the fake answered (e.g. the sent message with its id)
    error: str | None = None  # the description of a refusal or failure, None: it succeeded


@dataclass(frozen=True)
class Failure:
    """An HTTP error the fake answers instead of success."""

    status: int
    description: str
    retry_after: float | None = None

    @classmethod
    def flood(cls, retry_after: float) -> Failure:
        """429 Too Many Requests, as Telegram answers a bot (or a chat) sending too fast."""
        return cls(429, f"Too Many Requests: retry after {retry_after:g}", retry_after)

    @classmethod
    def server_error(cls, status: int = 502) -> Failure:
        names = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return cls(status, names.get(status, "Server Error"))

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class _Planned:
    """Failures a test asked for: of one method (None: any) to one chat (None: any)."""

    method: str | None
    chat_id: int | None
    failure: Failure
    times: int | None  # None: until `clear_failures`

    def matches(self, method: str, chat_id: int | None) -> bool:
        return (self.method is None or self.method == method) and (
            self.chat_id is None or self.chat_id == chat_id
        )


class Gate:
    """Calls held in the network until `release` (at most WAIT seconds)."""

    def __init__(self, method: str | None, chat_id: int | None) -> None:
        self.method = method
        self.chat_id = chat_id
        self._open = asyncio.Event()

    def holds(self, method: str, chat_id: int | None) -> bool:
        return (
            not self._open.is_set()
            and (self.method is None or self.method == method)
            and (self.chat_id is None or self.chat_id == chat_id)
        )

    async def wait(self) -> None:
        await asyncio.wait_for(self._open.wait(), WAIT)

    def release(self) -> None:
        self._open.set()


@dataclass
class FakeFile:
    """A file Telegram stores: its kind (photo, document, video...), size and bytes if known."""

    file_id: str
    kind: str = "document"
    declared_size: int | None = None
    content: bytes | None = None
    mime: str | None = None  # a document's declared type: what its made-up bytes look like

    @property
    def size(self) -> int | None:
        return len(self.content) if self.content is not None else self.declared_size

    def bytes(self) -> bytes:
        """Its content, or bytes of its declared size that look like its type (a photo is a
        JPEG, a PDF starts %PDF...), different for every file so that hashes differ too."""
        if self.content is not None:
            return self.content
        head = _MAGIC.get(self.mime or "", b"") if self.kind != "photo" else _MAGIC["image/jpeg"]
        body = head + f" fake file {self.file_id} ".encode()
        size = max(self.declared_size or 0, len(body))
        return body + b"0" * (size - len(body))


_MAGIC = {
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-1.7\n",
}


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
    """What a message shows as text: its text, a caption, or a marker for bare media."""
    for name in ("text", "caption"):
        if params.get(name):
            return str(params[name])
    if "media" in params and isinstance(params["media"], list):
        return " ".join(f"[{m.get('type', 'media')}]" for m in params["media"])
    for kind in ("photo", "document", "video", "audio", "voice", "contact"):
        if kind in params:
            return f"[{kind}]"
    return ""


def _chat(params: dict[str, Any]) -> int | None:
    chat_id = params.get("chat_id")
    if isinstance(chat_id, int):
        return chat_id
    return int(chat_id) if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit() else None


class FakeTelegram(BaseRequest):
    """Answers the Bot API as Telegram does and records every call, like PTB's own tests.

    Message ids increase per chat, and a forum topic's id is the id of the service message that
    opened it, as in Telegram. What breaks a Bot API limit (bot/testing/_limits.py) is answered
    400 and kept in `refused`. A file id it has never seen is taken as valid; one it knows (from
    `add_file`, or an update built by `Updates(tg=…)`) must be of the right kind.

    `record=False` keeps no calls and no chat state, only each chat's latest inline keyboard
    (`keyboards`): the benchmark's memory is then the bot's own. `latency` delays every call, half
    on the way out and half on the way back, as a network would."""

    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        *,
        record: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.now = now or (lambda: datetime.now(UTC))
        self.record = record
        self.latency = latency
        self.calls: list[Call] = []
        self.refused: list[Call] = []  # answered 400 for breaking a Bot API limit
        self.shown: dict[tuple[int, int], Shown] = {}  # (chat, message id) -> what it shows
        # chat id -> (message id, inline buttons) of the newest message with inline buttons
        self.keyboards: dict[int, tuple[int, list[tuple[str, str]]]] = {}
        self.topics: list[dict[str, Any]] = []  # createForumTopic answers, oldest first
        self.closed_topics: set[tuple[int, int]] = set()  # (chat, thread)
        self.deleted_topics: set[tuple[int, int]] = set()
        self.files: dict[str, FakeFile] = {}
        self.incoming: list[list[dict[str, Any]]] = []  # successive getUpdates answers
        self.on_get_updates: Callable[[int], None] | None = None  # called with the call count
        # (chat, message id) -> text of messages users sent, so a copy shows what it copied
        self.originals: dict[tuple[int, int], str] = {}
        self._planned: list[_Planned] = []
        self._gates: list[Gate] = []
        self._watchers: list[Callable[[Call], None]] = []
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._seq = itertools.count(1)
        self._get_updates_calls = 0
        self._called = asyncio.Event()  # set at every call: `until` waits on it, no polling

    # -- switches a test turns on -----------------------------------------------------------

    def fail(
        self,
        method: str | None,
        failure: Failure,
        *,
        times: int | None = 1,
        chat_id: int | None = None,
    ) -> None:
        """Answer `failure` to the next `times` calls of `method` (None: any method), to
        `chat_id` only if given; `times=None`: until `clear_failures`. Planned failures are used
        in the order planned."""
        self._planned.append(_Planned(method, chat_id, failure, times))

    def clear_failures(self) -> None:
        self._planned.clear()

    def hold(self, method: str | None = "sendMessage", *, chat_id: int | None = None) -> Gate:
        """Hold such calls in the network (recorded, not answered) until the gate's `release`."""
        gate = Gate(method, chat_id)
        self._gates.append(gate)
        return gate

    def watch(self, callback: Callable[[Call], None]) -> None:
        """Call `callback` with every call Telegram accepts, before the bot gets the answer."""
        self._watchers.append(callback)

    def add_file(
        self,
        file_id: str,
        content: bytes | None = None,
        *,
        kind: str = "document",
        size: int = 0,
        mime: str | None = None,
    ) -> FakeFile:
        """A file Telegram holds: getFile answers its size, a download returns `content` (or
        made-up bytes of its size that look like its type)."""
        known = self.files.get(file_id)
        if known is None:
            known = self.files[file_id] = FakeFile(file_id, kind, size or None, content, mime)
        else:
            known.kind = kind
            known.content = content if content is not None else known.content
            known.declared_size = size or known.declared_size
            known.mime = mime or known.mime
        return known

    def new_message_id(self, chat_id: int) -> int:
        """The next message id of a chat (the bot's messages and the users' share it)."""
        ids = self._message_ids.get(chat_id)
        if ids is None:
            ids = self._message_ids[chat_id] = itertools.count(1)
        return next(ids)

    # -- BaseRequest --------------------------------------------------------------------------

    @property
    def read_timeout(self) -> float | None:
        return WAIT

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
        params = dict(request_data.parameters) if request_data is not None else {}
        return await self.handle(method, url, params)

    async def handle(self, method: str, url: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """One request as Telegram gets it: a file download (GET of base_file_url/path) or a Bot
        API method (the last part of `url`) with its decoded parameters; (HTTP status, body).
        PTB's `do_request` and the loopback server (`FakeBotApiServer`) both end here."""
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        if method == "GET":  # a file download from base_file_url
            answer = self._download(url)
        else:
            answer = await self._answer(Call(url.rsplit("/", 1)[-1], params, url))
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        return answer

    def _download(self, url: str) -> tuple[int, bytes]:
        if self.record:
            self.calls.append(Call("GET", {}, url))
        known = self.files.get(url.rsplit("/", 1)[-1])
        if known is None:
            return 404, json.dumps(
                {"ok": False, "error_code": 404, "description": "Not Found"}
            ).encode()
        return 200, known.bytes()

    async def _answer(self, call: Call) -> tuple[int, bytes]:
        name, params = call.method, call.params
        if self.record:
            self.calls.append(call)
        self._called.set()
        refused = refusal(name, params) or self._file_refusal(name, params)
        if refused is not None:  # what Telegram itself refuses: the bot must keep to its limits
            call.error = refused
            self.refused.append(call)
            return 400, json.dumps(
                {"ok": False, "error_code": 400, "description": refused}
            ).encode()
        chat_id = _chat(params)
        failure = self._planned_failure(name, chat_id) or self._state_failure(name, params)
        if failure is not None:
            call.error = failure.description
            return failure.status, json.dumps(failure.body()).encode()
        for gate in self._gates:
            if gate.holds(name, chat_id):
                await gate.wait()
        call.result = self._result(name, params)
        self._remember(call)
        for watcher in self._watchers:
            watcher(call)
        return 200, json.dumps({"ok": True, "result": call.result}).encode()

    def _planned_failure(self, method: str, chat_id: int | None) -> Failure | None:
        for planned in self._planned:
            if planned.matches(method, chat_id):
                if planned.times is not None:
                    planned.times -= 1
                    if planned.times <= 0:
                        self._planned.remove(planned)
                return planned.failure
        return None

    def _state_failure(self, method: str, params: dict[str, Any]) -> Failure | None:
        """What Telegram refuses because of what happened before: a deleted topic, a big file."""
        thread = params.get("message_thread_id")
        chat_id = _chat(params)
        if thread is not None and (chat_id, int(thread)) in self.deleted_topics:
            return Failure(400, "Bad Request: message thread not found")
        if method == "getFile":
            known = self.files.get(str(params.get("file_id")))
            if known is None:
                return Failure(400, "Bad Request: invalid file_id")
            if (known.size or 0) > DOWNLOAD_LIMIT:
                return Failure(400, "Bad Request: file is too big")
        return None

    def _file_refusal(self, method: str, params: dict[str, Any]) -> str | None:
        """A file Telegram knows as another kind (a document's id to sendPhoto) is refused."""
        known = self.files.get(str(params.get("photo"))) if method == "sendPhoto" else None
        if known is None or known.kind == "photo":
            return None
        return f"Bad Request: can't use file of type {known.kind.capitalize()} as Photo"

    # -- answers ------------------------------------------------------------------------------

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": message_id or self.new_message_id(chat_id),
            "date": int(self.now().timestamp()),
            "chat": chat_of(chat_id),
            "from": BOT_USER,
        }
        thread = params.get("message_thread_id")
        if thread is not None:
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
        for name in ("text", "caption"):
            if params.get(name):
                message[name] = str(params[name])
        message.update(self._media(params))
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _media(self, params: dict[str, Any]) -> dict[str, Any]:
        """The file a sent message carries, under the id Telegram gives it."""
        for kind in ("photo", "document", "video"):
            value = params.get(kind)
            if value is None:
                continue
            file_id = str(value)
            if file_id.startswith("attach://"):  # an upload: Telegram names the new file
                file_id = f"{kind}-{next(self._seq)}"
                self.add_file(file_id, kind=kind)
            known: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"u-{file_id}"}
            if kind == "photo":
                return {"photo": [{**known, "width": 1080, "height": 1920}]}
            if kind == "video":
                return {"video": {**known, "width": 1080, "height": 1920, "duration": 1}}
            return {"document": known}
        return {}

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name in MESSAGE_METHODS:
            return self._message(params)
        if name in EDIT_METHODS:
            if "inline_message_id" in params:
                return True
            return self._message(params, int(params["message_id"]))
        if name == "copyMessage":
            return {"message_id": self.new_message_id(int(params["chat_id"]))}
        if name in ("copyMessages", "forwardMessages"):
            chat_id = int(params["chat_id"])
            return [{"message_id": self.new_message_id(chat_id)} for _ in params["message_ids"]]
        if name == "sendMediaGroup":
            return [self._message({**params, **self._item(m)}) for m in params["media"]]
        return self._other_result(name, params)

    @staticmethod
    def _item(media: dict[str, Any]) -> dict[str, Any]:
        """A media group's item as the parameters of a single send."""
        item = {str(media.get("type", "document")): media.get("media")}
        if media.get("caption"):
            item["caption"] = media["caption"]
        return item

    def _other_result(self, name: str, params: dict[str, Any]) -> Any:
        chat_id = _chat(params)
        if name == "getMe":
            return {
                **BOT_USER,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if name == "createForumTopic":
            assert chat_id is not None
            topic = {
                "message_thread_id": self.new_message_id(chat_id),
                "name": str(params["name"]),
                "icon_color": int(params.get("icon_color", 7322096)),
            }
            self.topics.append(topic)
            return dict(topic)
        if name in ("editForumTopic", "closeForumTopic", "reopenForumTopic", "deleteForumTopic"):
            assert chat_id is not None
            self._topic_changed(name, chat_id, int(params["message_thread_id"]), params)
            return True
        if name == "getFile":
            known = self.files[str(params["file_id"])]
            return {
                "file_id": known.file_id,
                "file_unique_id": f"u-{known.file_id}",
                "file_size": known.size,
                "file_path": f"{known.kind}s/{known.file_id}",
            }
        if name == "getUpdates":
            self._get_updates_calls += 1
            if self.on_get_updates is not None:
                self.on_get_updates(self._get_updates_calls)
            return self.incoming.pop(0) if self.incoming else []
        if name == "getChat":
            assert chat_id is not None
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
        # answerCallbackQuery, setMyCommands, setWebhook, deleteMessage, pinChatMessage...
        return True

    def _topic_changed(self, name: str, chat_id: int, thread: int, params: dict[str, Any]) -> None:
        key = (chat_id, thread)
        if name == "editForumTopic" and "name" in params:
            for topic in self.topics:
                if topic["message_thread_id"] == thread:
                    topic["name"] = str(params["name"])
        elif name == "closeForumTopic":
            self.closed_topics.add(key)
        elif name == "reopenForumTopic":
            self.closed_topics.discard(key)
        else:
            self.deleted_topics.add(key)

    def _remember(self, call: Call) -> None:
        """Keep what each chat shows: a new message with its buttons, an edit of the buttons."""
        params, result = call.params, call.result
        if call.method in MESSAGE_METHODS:
            chat_id, message_id = int(params["chat_id"]), int(result["message_id"])
            markup = params.get("reply_markup")
            buttons = inline_buttons(markup)
            if buttons:
                self.keyboards[chat_id] = (message_id, buttons)
            if self.record:
                self._shown(chat_id, message_id, params, result, markup)
        elif call.method in EDIT_METHODS and "message_id" in params and self.record:
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

    def _shown(
        self,
        chat_id: int,
        message_id: int,
        params: dict[str, Any],
        result: dict[str, Any],
        markup: Any,
    ) -> None:
        if isinstance(markup, dict) and ("keyboard" in markup or "remove_keyboard" in markup):
            # a new reply keyboard replaces the old one, and remove_keyboard takes it away
            for other in self.shown.values():
                if other.chat_id == chat_id:
                    other.reply_keyboard = []
        self.shown[(chat_id, message_id)] = Shown(
            chat_id,
            message_id,
            message_text(params),
            result.get("message_thread_id"),
            inline_buttons(markup),
            reply_keyboard(markup),
            inline_buttons(markup),
            next(self._seq),
        )

    # -- what tests read ----------------------------------------------------------------------

    def saw(self, update: dict[str, Any]) -> None:
        """Note what a user's message said (the bot may copy it elsewhere, e.g. to the desk)."""
        message = update.get("message")
        if self.record and isinstance(message, dict):
            key = (int(message["chat"]["id"]), int(message["message_id"]))
            self.originals[key] = message_text(message)

    def of(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of `method`, oldest first."""
        return [c.params for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None, thread: int | None = None) -> list[dict[str, Any]]:
        """sendMessage calls (to one chat, into one forum topic), oldest first."""
        return [
            p
            for p in self.of("sendMessage")
            if (chat_id is None or p["chat_id"] == chat_id)
            and (thread is None or p.get("message_thread_id") == thread)
        ]

    def texts(self, chat_id: int | None = None, thread: int | None = None) -> list[str]:
        """The texts of those sendMessage calls."""
        return [str(p["text"]) for p in self.sent(chat_id, thread)]

    def to(self, chat_id: int, *methods: str) -> list[dict[str, Any]]:
        """Calls sending something to a chat (by default every kind of message), oldest first."""
        wanted = methods or ("sendMessage", "copyMessage", *_MEDIA)
        return [
            c.params for c in self.calls if c.method in wanted and c.params["chat_id"] == chat_id
        ]

    def answers(self) -> list[str]:
        """The texts of every answerCallbackQuery ("" for a silent answer)."""
        return [str(p.get("text") or "") for p in self.of("answerCallbackQuery")]

    def result_of(self, params: dict[str, Any]) -> int:
        """The message id the fake gave a recorded call."""
        for call in self.calls:
            if call.params is params:
                return int(call.result["message_id"])
        raise AssertionError("no such call")

    def text_of(self, call: Call) -> str:
        """What a call put in a chat: its text or caption, or the text of the message it copied."""
        params = call.params
        if call.method in ("copyMessage", "forwardMessage"):
            key = (int(params.get("from_chat_id", 0)), int(params.get("message_id", 0)))
            return message_text(params) or self.originals.get(key, "")
        return message_text(params)

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

    def clear(self) -> None:
        self.calls.clear()

    async def until(self, condition: Callable[[], bool], seconds: float = WAIT) -> None:
        """Wait (at most `seconds`) until the recorded calls satisfy `condition`."""

        async def wait() -> None:
            while not condition():
                self._called.clear()
                await self._called.wait()

        await asyncio.wait_for(wait(), seconds)
