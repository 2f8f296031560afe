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
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import Update

from bot.telegram._updates import _WEBHOOK_PARSE_FAILURE, WEBHOOK_LOGGER

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

BotApplication = Any  # telegram.ext.Application with any type parameters


class _UpdateHandler(tornado.web.RequestHandler):
    def initialize(self, bot_application: BotApplication, secret: str) -> None:
        self.application_ = bot_application
        self.secret = secret.encode()

    def check_xsrf_cookie(self) -> None:
        """Telegram sends no cookie: the secret token is the check."""

    async def post(self) -> None:
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


class WebhookServer:
    """POSTs to `path` on `listen:port` handled by `application` (already initialised)."""

    def __init__(
        self, application: BotApplication, listen: str, port: int, path: str, secret: str
    ) -> None:
        route = "/" + path.strip("/")
        web = tornado.web.Application(
            [(route, _UpdateHandler, {"bot_application": application, "secret": secret})]
        )
        self._server = tornado.httpserver.HTTPServer(web)
        self._listen, self._port = listen, port

    def start(self) -> None:
        sockets = tornado.netutil.bind_sockets(self._port, self._listen, reuse_port=True)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Take no new request; wait for those being handled."""
        self._server.stop()
        await self._server.close_all_connections()


async def open_webhook(application: BotApplication, options: dict[str, Any]) -> WebhookServer:
    """Tell Telegram the URL and secret (setWebhook), then listen."""
    server = WebhookServer(
        application,
        options["listen"],
        options["port"],
        options["url_path"],
        options["secret_token"],
    )
    await application.bot.set_webhook(
        options["webhook_url"],
        secret_token=options["secret_token"],
        allowed_updates=options["allowed_updates"],
    )
    server.start()
    return server


async def serve_webhook(
    application: BotApplication, options: dict[str, Any], stop: asyncio.Event | None = None
) -> None:
    """What `run_webhook` does, with this server: initialise, post_init, setWebhook, serve until
    SIGINT / SIGTERM (or `stop`), then stop in order (post_stop, shutdown)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    server = await open_webhook(application, options)
    await application.start()
    log.info("webhook: serving %s:%s", options["listen"], options["port"])
    try:
        await stop.wait()
    finally:
        await server.stop()
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
        await application.shutdown()
