"""The python-telegram-bot `Application` around the adapter, and `refund-bot run`."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from telegram import Update
from telegram.constants import UpdateType
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    TypeHandler,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.app import App, build_app
from bot.config import Config, Secrets
from bot.telegram._adapter import TelegramAdapter
from bot.telegram._api import quiet_typed_method_warning
from bot.telegram._processor import ChatLocks, PerChatUpdateProcessor
from bot.telegram._ratelimit import PerChatRateLimiter
from bot.telegram._updates import SkippedUpdates, TolerantUpdates, quiet_webhook_parse_failures
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
) -> TelegramBot:
    """Wire the adapter into an Application (tests pass a fake `request` transport)."""
    settings = app.config.telegram
    quiet_typed_method_warning()
    locks = ChatLocks()
    adapter = TelegramAdapter(app, locks=locks)
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
    if request is not None:
        builder = builder.request(request)
    # getUpdates through a transport that skips what PTB cannot parse, one update at a time
    skipped = SkippedUpdates()
    inner = get_updates_request or HTTPXRequest(connection_pool_size=1)
    builder = builder.get_updates_request(TolerantUpdates(inner, skipped))
    quiet_webhook_parse_failures(skipped)
    application: BotApplication = builder.build()
    application.add_handler(TypeHandler(Update, adapter.on_update))
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


def run(
    config: Config,
    secrets: Secrets,
    *,
    request: BaseRequest | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`refund-bot run`: long polling, or the webhook server (bot/telegram/_webhook.py: answers
    after the turn committed, so several workers can share a URL); 2 when a secret is missing
    or another worker is already polling the same database."""
    problems = secret_problems(config, secrets)
    for problem in problems:
        print(f"refund-bot run: {problem}", file=stderr or sys.stderr)
    if problems:
        return 2
    assert secrets.token is not None
    app = build_app(config)
    try:
        bot = build_bot(app, secrets.token, request=request, get_updates_request=request)
        if config.telegram.mode == "webhook":
            assert secrets.webhook_secret is not None
            options = webhook_options(config, secrets.webhook_secret)
            asyncio.run(serve_webhook(bot.application, options))
        else:
            # getUpdates has one consumer: a second polling worker on the database is refused
            with app.store.lease("polling") as polling:
                if polling is None:
                    print(POLLING_TAKEN, file=stderr or sys.stderr)
                    return 2
                bot.application.run_polling(allowed_updates=ALLOWED_UPDATES)
    finally:
        app.close()
    return 0
