"""The webhook server: Telegram's POST is answered only once the update's turn has committed.

python-telegram-bot's own webhook server puts the update in a queue and answers 200 at once, so
with several workers behind one URL Telegram's one-update-at-a-time per chat is lost (the next
update of the chat may reach another worker before the first one's turn ran) and an update
acknowledged but not yet handled dies with its worker. This server (tornado, which PTB's webhook
extra brings) checks the secret token (403 without it, nothing written), parses the update (400
when PTB cannot: Telegram retries it, the log says so once), and awaits the update's processing
through the application's update processor (the per-chat lock within the worker; the engine's
per-chat transaction lock across workers) before it answers 200. A worker killed mid-turn
answers nothing: Telegram sends the update again, to whichever worker, and its dedupe key makes
it one turn. Several processes on one host may share the port (SO_REUSEPORT).

Stopping (SIGTERM) drains: the port is closed, a request arriving on a kept-alive connection is
answered 503 (Telegram sends it again, to another worker or after the restart), and the updates
being handled finish and are answered, for at most STOP_GRACE seconds, before the connections
close. The worker listens before it tells Telegram its URL, so the first delivery finds it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import Update

from bot.telegram._updates import _WEBHOOK_PARSE_FAILURE, WEBHOOK_LOGGER

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# seconds a stopping worker waits for the updates it is handling (below a supervisor's usual
# stop timeout: Docker's 10 s, systemd's 90 s; an update cut off is sent again by Telegram)
STOP_GRACE = 8.0

BotApplication = Any  # telegram.ext.Application with any type parameters


class _UpdateHandler(tornado.web.RequestHandler):
    def initialize(
        self, bot_application: BotApplication, secret: str, server: WebhookServer
    ) -> None:
        self.application_ = bot_application
        self.secret = secret.encode()
        self.server = server

    def check_xsrf_cookie(self) -> None:
        """Telegram sends no cookie: the secret token is the check."""

    async def post(self) -> None:
        if self.server.stopping:  # Telegram tries again: another worker, or this one restarted
            self.refused_while_stopping = True
            self.set_status(503)
            self.set_header("Connection", "close")
            return
        with self.server.handling():
            await self._handle()
            await self.finish()  # answered before the stopping worker closes the connection

    async def _handle(self) -> None:
        token = self.request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(token, self.secret):
            self.set_status(403)
            return
        try:
            data = json.loads(self.request.body)
        except ValueError:
            self.set_status(400)
            return
        app = self.application_
        try:
            update = Update.de_json(data, app.bot)
        except Exception:
            # the one-line filter of bot.telegram._updates turns this into one line per update
            logging.getLogger(WEBHOOK_LOGGER).critical(_WEBHOOK_PARSE_FAILURE, data, exc_info=True)
            self.set_status(400)
            return
        # handled (committed, replied) before Telegram hears back; errors go to the handlers
        await app.update_processor.process_update(update, app.process_update(update))
        self.set_status(200)


class _Web(tornado.web.Application):
    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """tornado's access line, but a 503 while stopping is no error: a drain says it."""
        if getattr(handler, "refused_while_stopping", False):
            log.info("webhook: stopping; a delivery answered 503 (Telegram sends it again)")
            return
        super().log_request(handler)


class WebhookServer:
    """POSTs to `path` on `listen:port` handled by `application` (already initialised)."""

    def __init__(
        self, application: BotApplication, listen: str, port: int, path: str, secret: str
    ) -> None:
        route = "/" + path.strip("/")
        arguments = {"bot_application": application, "secret": secret, "server": self}
        web = _Web([(route, _UpdateHandler, arguments)])
        self._server = tornado.httpserver.HTTPServer(web)
        self._listen, self._port = listen, port
        self.stopping = False
        self._handling = 0  # requests being handled
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        sockets = tornado.netutil.bind_sockets(self._port, self._listen, reuse_port=True)
        self._server.add_sockets(sockets)

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Around a request being handled: `stop` waits for it."""
        self._handling += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._handling -= 1
            if not self._handling:
                self._idle.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take no new request; let those being handled finish and be answered (at most
        `grace` seconds), then close the connections."""
        self.stopping = True
        self._server.stop()
        log.info("webhook: stopping; %d update(s) in hand", self._handling)
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "webhook: stopped with %d update(s) still being handled after %g s;"
                " Telegram sends them again",
                self._handling,
                grace,
            )
        await self._server.close_all_connections()


async def open_webhook(application: BotApplication, options: dict[str, Any]) -> WebhookServer:
    """Listen, then tell Telegram the URL and secret (setWebhook): its first delivery, which
    may come at once, finds the port open."""
    server = WebhookServer(
        application,
        options["listen"],
        options["port"],
        options["url_path"],
        options["secret_token"],
    )
    server.start()
    try:
        await application.bot.set_webhook(
            options["webhook_url"],
            secret_token=options["secret_token"],
            allowed_updates=options["allowed_updates"],
        )
    except BaseException:
        await server.stop(grace=0)
        raise
    return server


async def serve_webhook(
    application: BotApplication, options: dict[str, Any], stop: asyncio.Event | None = None
) -> None:
    """What `run_webhook` does, with this server: initialise, post_init, start, listen and
    setWebhook (`open_webhook`), serve until SIGINT / SIGTERM (or `stop`), then stop in order:
    the server drains (the updates being handled are answered), then stop, post_stop,
    shutdown."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()
    try:
        server = await open_webhook(application, options)
    except BaseException:
        await _stop_application(application)
        raise
    log.info("webhook: serving %s:%s", options["listen"], options["port"])
    try:
        await stop.wait()
    finally:
        await server.stop()
        await _stop_application(application)


async def _stop_application(application: BotApplication) -> None:
    await application.stop()
    if application.post_stop is not None:
        await application.post_stop(application)
    await application.shutdown()
