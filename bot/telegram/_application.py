"""The python-telegram-bot `Application` around the adapter, and `refund-bot run`."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from telegram import Bot, Update
from telegram.constants import UpdateType
from telegram.error import InvalidToken, NetworkError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    TypeHandler,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.app import App, build_app
from bot.clock import to_local
from bot.config import Config, Secrets
from bot.telegram._adapter import ALBUM_SWEEP_SECONDS, Context, TelegramAdapter
from bot.telegram._api import quiet_typed_method_warning
from bot.telegram._heap import frozen_startup_heap
from bot.telegram._processor import ChatLocks, PerChatUpdateProcessor
from bot.telegram._ratelimit import PerChatRateLimiter
from bot.telegram._updates import SkippedUpdates, TolerantUpdates, quiet_webhook_parse_failures
from bot.telegram._watch import Handler, MeteredRequest, Watch
from bot.telegram._webhook import serve_webhook

# customers and agents alike send messages and press buttons; the desk needs no other update
# (chat_member and the like are left out: who may act is the config's allow-list, not the group's)
ALLOWED_UPDATES: list[str] = [UpdateType.MESSAGE, UpdateType.CALLBACK_QUERY]
RATE_LIMIT_RETRIES = 3  # a 429 is waited out (retry_after) and retried this many times
# handled update ids are forgotten daily (a scan, see migration 0003), first soon after a start
PRUNE_EVERY = timedelta(days=1)
PRUNE_FIRST = timedelta(minutes=5)
# the Bot API's rule for the secret token Telegram echoes in X-Telegram-Bot-Api-Secret-Token
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

MAX_RETRY_DELAY = 300.0
log = logging.getLogger("bot.run")

BotApplication = Application[Any, Any, Any, Any, Any, Any]
POLLING_TAKEN = (
    "refund-bot run: another worker is already polling Telegram with this database; polling has"
    " one consumer. Stop it, or run several workers with telegram.mode: webhook"
)


@dataclass
class TelegramBot:
    """The PTB application and the adapter whose handlers, jobs and hooks it runs."""

    application: BotApplication
    adapter: TelegramAdapter
    skipped: SkippedUpdates  # updates that could not be parsed (logged, then passed over)


def build_bot(
    app: App,
    token: str,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    watch: Watch | None = None,
) -> TelegramBot:
    """Wire the adapter into an Application (tests pass a fake `request` transport; `watch`
    counts what it does for the metrics endpoint)."""
    settings = app.config.telegram
    quiet_typed_method_warning()
    locks = ChatLocks()
    adapter = TelegramAdapter(app, locks=locks)
    # -- watched: metrics of the transport and the handler (bot/telegram/_watch.py) --
    request = request or HTTPXRequest(connection_pool_size=256, proxy=settings.proxy)
    get_updates_request = get_updates_request or HTTPXRequest(
        connection_pool_size=1, proxy=settings.proxy
    )
    handler: Handler[Context] = adapter.on_update
    if watch is not None:
        request = MeteredRequest(request, watch)
        get_updates_request = MeteredRequest(get_updates_request, watch)
        handler = watch.counted(adapter.on_update)
        adapter.watch = watch
    # -- end watched --
    builder = (
        ApplicationBuilder()
        .token(token)
        .concurrent_updates(PerChatUpdateProcessor(settings.concurrent_updates, locks))
        .rate_limiter(rate_limiter or PerChatRateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .post_init(adapter.start_up)
        .post_stop(adapter.shut_down)
    )
    if settings.base_url:
        builder = builder.base_url(settings.base_url)
    if settings.base_file_url:
        builder = builder.base_file_url(settings.base_file_url)
    builder = builder.request(request)
    # getUpdates through a transport that skips what PTB cannot parse, one update at a time
    skipped = SkippedUpdates()
    builder = builder.get_updates_request(TolerantUpdates(get_updates_request, skipped))
    quiet_webhook_parse_failures(skipped)
    application: BotApplication = builder.build()
    application.add_handler(TypeHandler(Update, handler))
    application.add_error_handler(adapter.on_error)
    jobs = application.job_queue
    if jobs is None:  # pragma: no cover - the job-queue extra is a dependency
        raise RuntimeError('install "python-telegram-bot[job-queue]"')
    # each tick runs on one worker at a time (adapter.once: a lease per job)
    jobs.run_repeating(
        adapter.once("outbox", adapter.deliver_job),
        interval=settings.outbox_interval_seconds,
        name="outbox",
    )
    # albums whose worker stopped before handing them over (the parts wait in the store)
    jobs.run_repeating(
        adapter.once("albums", adapter.album_job),
        interval=ALBUM_SWEEP_SECONDS,
        name="albums",
    )
    jobs.run_repeating(
        adapter.once("reminders", adapter.reminder_job),
        interval=settings.reminder_interval_seconds,
        name="reminders",
    )
    jobs.run_repeating(
        adapter.once("prune", adapter.prune_job),
        interval=PRUNE_EVERY,
        first=PRUNE_FIRST,
        name="prune",
    )
    # the deadlines live in the store: a restart re-arms this job and repeats nothing done
    jobs.run_repeating(
        adapter.once("deadlines", adapter.desk.deadline_job),
        interval=app.config.agent_desk.deadline_check_seconds,
        first=settings.outbox_interval_seconds,
        name="deadlines",
    )
    if watch is not None:  # readiness wants a recent answer from Telegram, also when idle
        probe = watch.settings.telegram_fresh_seconds / 3
        jobs.run_repeating(watch.probe_job, interval=probe, first=0.0, name="telegram-probe")
    return TelegramBot(application, adapter, skipped)


def webhook_options(config: Config, secret: str) -> dict[str, Any]:
    """Arguments of `serve_webhook` (and of PTB's `run_webhook`): the server checks the secret."""
    hook = config.telegram.webhook
    return {
        "listen": hook.listen,
        "port": hook.port,
        "url_path": hook.path,
        "webhook_url": hook.url,
        "secret_token": secret,
        "allowed_updates": ALLOWED_UPDATES,
    }


def secret_problems(config: Config, secrets: Secrets) -> list[str]:
    """What is missing from the environment to run in the configured mode."""
    problems = []
    if not secrets.token:
        problems.append("REFUND_BOT_TOKEN is not set: put the bot token from @BotFather there")
    if config.telegram.mode == "webhook":
        if not secrets.webhook_secret:
            problems.append(
                "REFUND_BOT_WEBHOOK_SECRET is not set: webhook mode needs a secret token "
                "(1-256 characters A-Z a-z 0-9 _ -)"
            )
        elif not _SECRET_TOKEN.match(secrets.webhook_secret):
            problems.append(
                "REFUND_BOT_WEBHOOK_SECRET may only hold 1-256 characters A-Z a-z 0-9 _ -"
            )
    return problems


def start_line(app: App, watch_port: int | None) -> str:
    """What `run` runs, said once at start: mode, store, desk, agents, calendar coverage."""
    config = app.config
    desk = config.agent_desk
    year = to_local(app.clock.now()).year
    calendar = "; ".join(app.calendar.sources((year, year + 1)))
    metrics = (
        f"metrics on http://{config.metrics.listen}:{watch_port}/metrics"
        if watch_port is not None
        else "metrics off"
    )
    return (
        f"refund-bot run: {config.telegram.mode}, store {config.store.target.masked},"
        f" agent desk {desk.chat_id if desk.chat_id is not None else '(none)'}"
        f" with {len(desk.agent_ids)} agent(s), working days {calendar}; {metrics}"
    )


def run(
    config: Config,
    secrets: Secrets,
    *,
    request: BaseRequest | None = None,
    stderr: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`refund-bot run`: long polling, or the webhook server (bot/telegram/_webhook.py: answers
    after the turn committed, so several workers can share a URL); 2 when a secret is missing
    or another worker is already polling the same database. Telegram unreachable at start: one
    line, then again after 1, 2, 4… (at most 300) seconds."""
    problems = secret_problems(config, secrets)
    for problem in problems:
        print(f"refund-bot run: {problem}", file=stderr or sys.stderr)
    if problems:
        return 2
    assert secrets.token is not None
    app = build_app(config)
    watch = Watch(app.store, app.clock, config.metrics) if config.metrics.enabled else None
    try:
        server = watch.serve() if watch is not None else None
    except OSError as exc:  # the port is taken, or the address is not this machine's
        where = f"{config.metrics.listen}:{config.metrics.port}"
        print(f"refund-bot run: metrics port {where}: {exc}", file=stderr or sys.stderr)
        app.close()
        return 1
    log.info(start_line(app, server.port if server is not None else None))
    try:
        if config.telegram.mode == "webhook":
            assert secrets.webhook_secret is not None
            if not _wait_for_telegram(config, secrets.token, request, sleep):
                return 1
            bot = build_bot(
                app, secrets.token, request=request, get_updates_request=request, watch=watch
            )
            with frozen_startup_heap():
                asyncio.run(
                    serve_webhook(bot.application, webhook_options(config, secrets.webhook_secret))
                )
            return 0
        # getUpdates has one consumer: a second polling worker on the database is refused
        # (before anything else, so that it is told at once, Telegram reachable or not)
        with app.store.lease("polling") as polling:
            if polling is None:
                print(POLLING_TAKEN, file=stderr or sys.stderr)
                return 2
            if not _wait_for_telegram(config, secrets.token, request, sleep):
                return 1
            bot = build_bot(
                app, secrets.token, request=request, get_updates_request=request, watch=watch
            )
            with frozen_startup_heap():
                bot.application.run_polling(allowed_updates=ALLOWED_UPDATES)
        return 0
    finally:
        if server is not None:
            server.close()
        app.close()


def _wait_for_telegram(
    config: Config, token: str, request: BaseRequest | None, sleep: Callable[[float], None]
) -> bool:
    """getMe until Telegram answers: one line per failure, then 1, 2, 4… (at most 300) seconds.
    False: Telegram refuses the token (no retry helps), or Ctrl-C while waiting."""
    delay = 1.0
    while True:
        try:
            asyncio.run(_get_me(config, token, request))
            return True
        except InvalidToken as exc:
            log.error("refund-bot run: Telegram refuses the token: %s", exc)
            return False
        except NetworkError as exc:
            log.error(
                "refund-bot run: Telegram cannot be reached (%s); trying again in %.0f s"
                " (behind a proxy: telegram.proxy or HTTPS_PROXY)",
                exc,
                delay,
            )
            try:
                sleep(delay)
            except KeyboardInterrupt:
                log.error("refund-bot run: stopped before Telegram answered")
                return False
            delay = min(delay * 2, MAX_RETRY_DELAY)


async def _get_me(config: Config, token: str, request: BaseRequest | None) -> None:
    settings = config.telegram
    bot = Bot(
        token,
        request=request or HTTPXRequest(connection_pool_size=1, proxy=settings.proxy),
        base_url=settings.base_url or "https://api.telegram.org/bot",
        base_file_url=settings.base_file_url or "https://api.telegram.org/file/bot",
    )
    await bot.initialize()  # getMe; the request is left open for the run (a fake is shared)
