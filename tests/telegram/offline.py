"""Offline Telegram: a fake Bot API transport that records every call, raw update builders, and a
harness driving the real python-telegram-bot Application over the real engine and SQLite store.

Shared by the Telegram tests (tests/telegram/conftest.py holds their fixtures), the reliability
tests' bot process (tests/reliability/runner.py) and the benchmark (benchmarks/bench.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.ext import BaseRateLimiter
from telegram.request import BaseRequest, RequestData

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.config import Config, deep_merge, parse_config
from bot.domain import Order
from bot.orders_import import import_orders
from bot.store import Conversation, Store
from bot.store.sqlite import SqliteStore
from bot.telegram import TelegramBot, build_bot, conversation_key
from tests.factories import at, make_order, repo_config

TOKEN = "123456:TEST-token"
BOT_ID = 123456
PHONE = "+8613800138000"
NOW = at("2026-11-24 10:00")
WAIT = 5.0  # the bound of every wait in these tests, in seconds
MESSAGE_LIMIT = 4096  # UTF-16 code units of a message's text
ANSWER_LIMIT = 200  # characters of a callback query's answer
CALLBACK_DATA_LIMIT = 64  # bytes of a button's callback_data
# the button labels from the main menu to the evidence step of a "service not as promised" request
TO_EVIDENCE = (
    "Request a refund",
    "星河视频年卡",
    "Service not as promised",
    "Benefits missing",
    "Continue request",
)


@dataclass
class Call:
    method: str  # Bot API method, or "GET" for a file download
    params: dict[str, Any]
    url: str = ""
    result: Any = None  # what the fake answered (e.g. the sent message with its id)


@dataclass
class Failure:
    """An HTTP error the fake answers instead of success (e.g. 429 with retry_after)."""

    status: int
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


def bot_api_refusal(method: str, params: dict[str, Any]) -> str | None:
    """The 400 Telegram answers to a call that breaks one of its limits, or None."""
    if method == "sendMessage":
        text = str(params.get("text", ""))
        if not text.strip():
            return "Bad Request: message text is empty"
        if len(text.encode("utf-16-le")) // 2 > MESSAGE_LIMIT:
            return "Bad Request: message is too long"
    if method == "answerCallbackQuery" and len(str(params.get("text") or "")) > ANSWER_LIMIT:
        return "Bad Request: MESSAGE_TOO_LONG"
    markup = params.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
        for button in row:
            if not 1 <= len(str(button.get("callback_data", "")).encode()) <= CALLBACK_DATA_LIMIT:
                return "Bad Request: BUTTON_DATA_INVALID"
            if not str(button.get("text", "")).strip():
                return "Bad Request: text buttons are unallowed in the inline keyboard"
    return None


class FakeTelegram(BaseRequest):
    """Answers the Bot API methods the bot uses and records every call, like PTB's own tests."""

    def __init__(self, *, keep_calls: bool = True) -> None:
        self.keep_calls = keep_calls  # False: only `keyboards` is kept (the benchmark's memory)
        self.calls: list[Call] = []
        # chat id -> (message id, inline buttons) of the newest message with inline buttons
        self.keyboards: dict[int, tuple[int, list[tuple[str, str]]]] = {}
        self.failures: dict[str, list[Failure]] = {}  # method -> failures to answer first, in order
        self.updates: list[list[dict[str, Any]]] = []  # successive getUpdates answers
        self.on_get_updates: Callable[[int], None] | None = None  # called with the call count
        self.files: dict[str, bytes] = {}  # file_id -> the bytes a download returns
        self.refused: list[Call] = []  # calls answered 400 for breaking a Bot API limit
        self.gates: dict[int, asyncio.Event] = {}  # chat id -> sendMessage waits until set
        self._message_ids = itertools.count(1000)
        self._get_updates_calls = 0
        self._called = asyncio.Event()  # set at every call: `until` waits on it, no polling

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
        if method == "GET":  # a file download from base_file_url
            self.calls.append(Call("GET", {}, url))
            file_id = url.rsplit("/", 1)[-1]
            return 200, self.files[file_id]
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data is not None else {}
        call = Call(name, params, url)
        if self.keep_calls:
            self.calls.append(call)
        self._called.set()
        refusal = bot_api_refusal(name, params)
        if refusal is not None:  # what Telegram itself refuses: the bot must keep to its limits
            self.refused.append(call)
            refused = {"ok": False, "error_code": 400, "description": refusal}
            return 400, json.dumps(refused).encode()
        queued = self.failures.get(name)
        if queued:
            failure = queued.pop(0)
            body: dict[str, Any] = {
                "ok": False,
                "error_code": failure.status,
                "description": failure.description,
            }
            if failure.parameters:
                body["parameters"] = failure.parameters
            return failure.status, json.dumps(body).encode()
        chat_id = params.get("chat_id")
        gate = self.gates.get(chat_id) if isinstance(chat_id, int) else None
        if name == "sendMessage" and gate is not None:
            await asyncio.wait_for(gate.wait(), WAIT)
        call.result = self._result(name, params)
        buttons = inline_buttons(params) if name == "sendMessage" else []
        if buttons and isinstance(chat_id, int):
            self.keyboards[chat_id] = (call.result["message_id"], buttons)
        return 200, json.dumps({"ok": True, "result": call.result}).encode()

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "小年卡盟退款助手",
                "username": "xiaonian_refund_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if name in ("sendMessage", "editMessageReplyMarkup"):
            message_id = params.get("message_id") or next(self._message_ids)
            return {
                "message_id": message_id,
                "date": int(NOW.timestamp()),
                "chat": {"id": params["chat_id"], "type": "private"},
                "text": params.get("text", ""),
            }
        if name == "getUpdates":
            self._get_updates_calls += 1
            if self.on_get_updates is not None:
                self.on_get_updates(self._get_updates_calls)
            return self.updates.pop(0) if self.updates else []
        if name == "getFile":
            file_id = params["file_id"]
            return {
                "file_id": file_id,
                "file_unique_id": f"u-{file_id}",
                "file_size": len(self.files[file_id]),
                "file_path": f"documents/{file_id}",
            }
        return True  # answerCallbackQuery, setMyCommands, setWebhook, deleteWebhook...

    # -- what the tests read -----------------------------------------------------------------

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """sendMessage calls (to one chat), oldest first."""
        return [p for p in self.of("sendMessage") if chat_id is None or p["chat_id"] == chat_id]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [str(p["text"]) for p in self.sent(chat_id)]

    def clear(self) -> None:
        self.calls.clear()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (at most WAIT seconds) until the recorded calls satisfy `condition`."""

        async def wait() -> None:
            while not condition():
                self._called.clear()
                await self._called.wait()

        await asyncio.wait_for(wait(), WAIT)


@dataclass
class User:
    id: int
    first_name: str = "张三"
    language_code: str | None = "en"

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def private_chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


ALICE = User(1001)
BOB = User(2002, first_name="李四")
GROUP = {"id": -100123, "type": "supergroup", "title": "客服台"}


class Updates:
    """Raw Bot API update JSON, as Telegram would post it."""

    def __init__(self, first_id: int = 5000) -> None:
        self._ids = itertools.count(first_id)
        self._message_ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def message(
        self, user: User, chat: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        return {
            "update_id": self.next_id(),
            "message": {
                "message_id": next(self._message_ids),
                "date": int(NOW.timestamp()),
                "chat": chat or user.private_chat(),
                "from": user.as_dict(),
                **fields,
            },
        }

    def text(self, user: User, text: str, **fields: Any) -> dict[str, Any]:
        return self.message(user, text=text, **fields)

    def command(self, user: User, name: str, **fields: Any) -> dict[str, Any]:
        entity = {"type": "bot_command", "offset": 0, "length": len(name) + 1}
        return self.message(user, text=f"/{name}", entities=[entity], **fields)

    def contact(
        self, user: User, phone: str = PHONE, owner: int | None = -1, **fields: Any
    ) -> dict[str, Any]:
        contact: dict[str, Any] = {"phone_number": phone.lstrip("+"), "first_name": "张三"}
        owner_id = user.id if owner == -1 else owner
        if owner_id is not None:
            contact["user_id"] = owner_id
        return self.message(user, contact=contact, **fields)

    def photo(
        self, user: User, name: str, size: int = 150_000, album: str | None = None
    ) -> dict[str, Any]:
        sizes = [
            {
                "file_id": f"{name}-s",
                "file_unique_id": f"{name}-us",
                "width": 90,
                "height": 160,
                "file_size": 2_000,
            },
            {
                "file_id": name,
                "file_unique_id": f"u-{name}",
                "width": 1080,
                "height": 1920,
                "file_size": size,
            },
            {
                "file_id": f"{name}-m",
                "file_unique_id": f"{name}-um",
                "width": 320,
                "height": 568,
                "file_size": 20_000,
            },
        ]
        fields: dict[str, Any] = {"photo": sizes}
        if album is not None:
            fields["media_group_id"] = album
        return self.message(user, **fields)

    def document(
        self, user: User, name: str, file_name: str, mime: str, size: int = 100_000
    ) -> dict[str, Any]:
        document = {
            "file_id": name,
            "file_unique_id": f"u-{name}",
            "file_name": file_name,
            "mime_type": mime,
            "file_size": size,
        }
        return self.message(user, document=document)

    def press(
        self, user: User, data: str, message_id: int = 1, chat: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        update_id = self.next_id()
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"cq{update_id}",
                "from": user.as_dict(),
                "chat_instance": "ci-1",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": int(NOW.timestamp()),
                    "chat": chat or user.private_chat(),
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "bot"},
                    "text": "…",
                },
            },
        }


def inline_buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, callback_data) of a recorded sendMessage's inline keyboard."""
    markup = params.get("reply_markup") or {}
    return [
        (b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row
    ]


def shop_orders() -> list[Order]:
    return [
        make_order(
            order_id="V1",
            product_name="星河视频年卡",
            cash_paid_fen=19800,
            list_price_fen=19800,
            paid_at=at("2026-11-22 10:00"),
        ),
        make_order(
            order_id="X1", product_name="别人的年卡", phone="+8613900139000", customer_name="李四"
        ),
    ]


def telegram_config(tmp_path: Path, **overrides: Any) -> Config:
    data = deep_merge(
        repo_config().model_dump(mode="json"),
        {
            "store": {"path": str(tmp_path / "bot.sqlite3")},
            # the repeating jobs never fire during a test: the tests call them directly
            "telegram": {"outbox_interval_seconds": 3600, "reminder_interval_seconds": 3600},
        },
    )
    return parse_config(deep_merge(data, overrides))


class Harness:
    """One running bot: App (engine + SQLite) and a PTB Application on the fake transport."""

    def __init__(
        self,
        config: Config,
        clock: FixedClock,
        tg: FakeTelegram,
        rate_limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        self.config = config
        self.rate_limiter = rate_limiter  # None: the production one (AIORateLimiter)
        self.clock = clock
        self.tg = tg
        self.updates = Updates()
        self.app: App | None = None
        self.bot: TelegramBot | None = None

    async def start(
        self, *, import_orders_too: bool = True, wrap_store: Callable[[Store], Store] | None = None
    ) -> Harness:
        store: Store = SqliteStore.open(self.config.store.path, clock=self.clock)
        if wrap_store is not None:  # e.g. the reliability runner's slow commits
            store = wrap_store(store)
        self.app = build_app(self.config, clock=self.clock, store=store)
        if import_orders_too:
            import_orders(self.app.store, shop_orders())
        self.bot = build_bot(
            self.app,
            TOKEN,
            request=self.tg,
            get_updates_request=FakeTelegram(),
            rate_limiter=self.rate_limiter,
        )
        await self.application.initialize()
        await self.application.post_init(self.application)
        return self

    async def stop(self) -> None:
        """What run_polling does after a stop signal: post_stop (albums), then shutdown."""
        if self.bot is not None:
            await self.application.post_stop(self.application)
            await self.application.shutdown()
        if self.app is not None:
            self.app.close()

    @property
    def application(self) -> Any:
        assert self.bot is not None
        return self.bot.application

    @property
    def engine_app(self) -> App:
        assert self.app is not None
        return self.app

    async def process(self, data: dict[str, Any]) -> None:
        """One raw update through PTB: Update.de_json -> Application.process_update."""
        update = Update.de_json(data, self.application.bot)
        await asyncio.wait_for(self.application.process_update(update), WAIT)

    async def flush_albums(self) -> None:
        assert self.bot is not None
        await asyncio.wait_for(self.bot.adapter.flush_albums(self.application.bot), WAIT)

    def press_data(self, chat_id: int, label: str) -> str:
        """The callback_data of the newest sent button whose label contains `label`."""
        for params in reversed(self.tg.sent(chat_id)):
            for text, data in inline_buttons(params):
                if label in text:
                    return data
        raise AssertionError(f"no button {label!r} in {self.tg.texts(chat_id)[-3:]}")

    async def press(self, user: User, label: str) -> str:
        data = self.press_data(user.id, label)
        message_id = self._message_of(user.id, data)
        await self.process(self.updates.press(user, data, message_id=message_id))
        return data

    def _message_of(self, chat_id: int, data: str) -> int:
        """The message id the fake gave the sendMessage carrying that button."""
        for call in reversed(self.tg.calls):
            if (
                call.method == "sendMessage"
                and call.params["chat_id"] == chat_id
                and data in [d for _, d in inline_buttons(call.params)]
                and isinstance(call.result, dict)
            ):
                return int(call.result["message_id"])
        raise AssertionError(f"no message with {data!r}")

    async def link(self, user: User) -> None:
        """/start and share the own phone: the customer is at the main menu."""
        await self.process(self.updates.command(user, "start"))
        await self.process(self.updates.contact(user))
        assert self.state(user) == "menu.main"

    async def to_evidence(self, user: User) -> None:
        """Linked, then through the application up to the evidence upload step."""
        await self.link(user)
        for label in TO_EVIDENCE:
            await self.press(user, label)
        assert self.state(user) == "apply.evidence"

    def conversation(self, user: User) -> Conversation:
        conv = self.engine_app.engine.conversation(conversation_key(user.id))
        assert conv is not None
        return conv

    def state(self, user: User) -> str:
        conv = self.conversation(user)
        return f"{conv.flow}.{conv.state}"

    def evidence(self, user: User) -> list[dict[str, Any]]:
        """The files collected so far in the customer's application."""
        items: list[dict[str, Any]] = self.conversation(user).data.get("evidence", [])
        return items

    def count(self, sql: str) -> int:
        """A figure read from the database file, as another process would see it."""
        import sqlite3

        # delivery records ride on the next unit of work (Store.mark_sent_soon): write them now
        self.engine_app.store.flush()

        with sqlite3.connect(self.config.store.path) as db:
            value = db.execute(sql).fetchone()[0]
        return int(value)
