"""The fake Bot API over loopback HTTP: a stand-in Telegram server for a real `refund-bot run`
process (config `telegram.base_url` / `base_file_url`), answered by the one `FakeTelegram`.

`FakeBotApiServer(tg).start()` serves in a thread of its own with its own event loop (tornado),
so a test drives the process from outside while the fake records, fails and holds calls as it
does in-process. The fake's state belongs to that loop: read and change it through `call`, wait
through `until`, release a gate through `call(gate.release)`."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Self, TypeVar

import tornado.httpserver
import tornado.netutil
import tornado.web

from bot.testing._chats import TOKEN
from bot.testing._transport import WAIT, FakeTelegram

T = TypeVar("T")

# Parameters the Bot API takes as strings: kept as sent (PTB sends a string as it is and
# everything else JSON-encoded, so "123" as a text must not become a number)
STRING_PARAMETERS = frozenset(
    {
        "text",
        "caption",
        "name",
        "title",
        "description",
        "short_description",
        "url",
        "secret_token",
        "callback_query_id",
        "inline_message_id",
        "file_id",
        "photo",
        "document",
        "video",
        "audio",
        "voice",
        "animation",
        "sticker",
        "video_note",
        "thumbnail",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "parse_mode",
        "emoji",
        "icon_custom_emoji_id",
        "business_connection_id",
        "message_effect_id",
        "ip_address",
        "query",
        "question",
        "explanation",
    }
)


def _error(status: int, description: str) -> bytes:
    return json.dumps({"ok": False, "error_code": status, "description": description}).encode()


UNAUTHORIZED = _error(401, "Unauthorized")


def decode_parameter(name: str, value: str) -> Any:
    """A form field as PTB's `RequestData.parameters` had it before encoding."""
    if name in STRING_PARAMETERS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # a string such as "@channel"


class _Api(tornado.web.RequestHandler):
    def initialize(self, server: FakeBotApiServer) -> None:
        self.server = server
        self.woken: asyncio.Event | None = None  # set while getUpdates waits

    def check_xsrf_cookie(self) -> None:
        """A bot sends no cookie."""

    def on_connection_close(self) -> None:
        if self.woken is not None:  # e.g. the bot stopped polling: its getUpdates ends
            self.woken.set()

    async def get(self, token: str, method: str) -> None:
        await self.post(token, method)

    async def post(self, token: str, method: str) -> None:
        if not self.server.accepts(token):
            self._reply(401, UNAUTHORIZED)
            return
        params = self._parameters()
        if method == "getUpdates":
            await self._long_poll(float(params.get("timeout") or 0))
        try:
            status, body = await self.server.tg.handle("POST", self.request.full_url(), params)
        except Exception as exc:  # e.g. a held call never released: Telegram's kind of 500
            status, body = 500, _error(500, f"Internal Server Error: {exc!r}")
        self._reply(status, body)

    async def _long_poll(self, seconds: float) -> None:
        """As Telegram does: getUpdates waits (up to `seconds`) until there is an update."""
        if self.server.tg.incoming or seconds <= 0:
            return
        woken = self.woken = asyncio.Event()
        self.server.waiting.add(woken)
        try:
            async with asyncio.timeout(min(seconds, self.server.long_poll)):
                await woken.wait()
        except TimeoutError:
            pass
        finally:
            self.server.waiting.discard(woken)

    def _parameters(self) -> dict[str, Any]:
        kind = self.request.headers.get("Content-Type", "")
        if kind.startswith("application/json") and self.request.body:
            data = json.loads(self.request.body)
            return dict(data) if isinstance(data, dict) else {}
        # form-encoded and multipart fields, and the query string; uploaded files are left
        # out, as in-process (the fake sees `attach://name`, never the bytes)
        return {
            name: decode_parameter(name, values[-1].decode())
            for name, values in self.request.arguments.items()
            if values
        }

    def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.set_status(status)
        self.set_header("Content-Type", kind)
        self.write(body)


class _File(_Api):
    async def get(self, token: str, method: str) -> None:
        if not self.server.accepts(token):
            self._reply(401, UNAUTHORIZED)
            return
        status, body = await self.server.tg.handle("GET", self.request.full_url(), {})
        kind = "application/octet-stream" if status == 200 else "application/json"
        self._reply(status, body, kind)


class FakeBotApiServer:
    """`tg` served as the Bot API on 127.0.0.1: `url` is `telegram.base_url`, `file_url`
    `telegram.base_file_url`. Only `token` is let in (None: any), as Telegram answers 401 to a
    token it does not know. getUpdates waits for an update up to its timeout (at most
    `long_poll` seconds; `push` wakes it), so a polling bot does not spin."""

    def __init__(
        self, tg: FakeTelegram, *, token: str | None = TOKEN, long_poll: float = 1.0
    ) -> None:
        self.tg = tg
        self.token = token
        self.long_poll = long_poll
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self.waiting: set[asyncio.Event] = set()  # getUpdates calls waiting for an update

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def accepts(self, token: str) -> bool:
        return self.token is None or token == self.token

    def start(self) -> Self:
        """Listen on a free port and serve in a thread; returns once listening."""
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="fake-bot-api", daemon=True
        )
        self._thread.start()
        started.result(WAIT)
        return self

    def _serve(self, started: Future[None]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # the port could not be bound: the test hears why
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        handlers: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
            (r"/bot([^/]+)/(\w+)", _Api, {"server": self}),
            (r"/file/bot([^/]+)/(.+)", _File, {"server": self}),
        ]
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(tornado.web.Application(handlers))
        self._http.add_sockets(sockets)

    def stop(self) -> None:
        """Close the port and the connections, end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)

    async def _close(self) -> None:
        if self._http is not None:
            self._http.stop()
            await self._http.close_all_connections()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the fake, from the test's thread ------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        """Run `coroutine` on the server's loop and return its result."""
        assert self._loop is not None, "start the server first"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout + 1)

    def call(self, function: Callable[[], T]) -> T:
        """`function()` on the server's loop (the fake's state is that loop's)."""

        async def call() -> T:
            return function()

        return self.run(call())

    def until(self, condition: Callable[[], bool], seconds: float = WAIT) -> None:
        """Wait (at most `seconds`) until the fake's calls satisfy `condition` (checked on the
        server's loop); TimeoutError if they never do."""
        self.run(self.tg.until(condition, seconds), seconds)

    def push(self, *updates: dict[str, Any]) -> None:
        """Updates for the next getUpdates answer (one answer holding them all); a getUpdates
        waiting for one answers at once."""

        def push() -> None:
            self.tg.incoming.append(list(updates))
            for woken in self.waiting:
                woken.set()

        self.call(push)
