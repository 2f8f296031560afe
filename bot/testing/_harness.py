"""One running bot for tests: the real App (engine + store) and the real python-telegram-bot
Application, on the fake Bot API, fed raw update JSON."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any, Self

from telegram import Update
from telegram.ext import BaseRateLimiter, ContextTypes

from bot.app import App, build_app
from bot.calendar import WorkingCalendar
from bot.clock import FixedClock
from bot.config import Config
from bot.domain import Order
from bot.orders_import import import_orders
from bot.store import Conversation, Store, open_store
from bot.telegram import BotApplication, TelegramBot, build_bot, conversation_key
from bot.testing._chats import TOKEN, User
from bot.testing._transport import WAIT, FakeTelegram, inline_buttons
from bot.testing._updates import Updates


class Harness:
    """App + PTB Application on `tg` (a new FakeTelegram if none), as `refund-bot run` builds
    them minus the network. `start` again after `stop` is a process restart on the same store.

    `rate_limiter` None is the production one (AIORateLimiter). Errors that reach
    python-telegram-bot's error handlers are collected in `errors`."""

    def __init__(
        self,
        config: Config,
        clock: FixedClock,
        tg: FakeTelegram | None = None,
        *,
        rate_limiter: BaseRateLimiter[Any] | None = None,
        token: str = TOKEN,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self.config = config
        self.calendar = calendar  # None: the one build_app makes from the config
        self.clock = clock
        self.tg = tg or FakeTelegram(clock.now)
        self.rate_limiter = rate_limiter
        self.token = token
        self.updates = Updates(clock.now, tg=self.tg)
        self.app: App | None = None
        self.bot: TelegramBot | None = None
        self.errors: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(
        self, orders: Sequence[Order] = (), *, wrap_store: Callable[[Store], Store] | None = None
    ) -> Self:
        """Open the store (wrapped by `wrap_store`, e.g. slower commits), import `orders`,
        build and initialise the bot (post_init: commands, undelivered outbox)."""
        store: Store = open_store(
            self.config.store.target, self.clock, busy_timeout_ms=self.config.store.busy_timeout_ms
        )
        if wrap_store is not None:
            store = wrap_store(store)
        self.app = build_app(self.config, clock=self.clock, store=store, calendar=self.calendar)
        if orders:
            import_orders(self.app.store, orders)
        self.bot = build_bot(
            self.app,
            self.token,
            request=self.tg,
            get_updates_request=FakeTelegram(self.clock.now),
            rate_limiter=self.rate_limiter,
        )
        self.prepare(self.bot)
        application = self.bot.application
        application.add_error_handler(self._on_error)
        await application.initialize()
        if application.post_init is not None:
            await application.post_init(application)
        return self

    def prepare(self, bot: TelegramBot) -> None:
        """Called once the bot is built, before it is initialised (subclasses adjust it here)."""

    async def stop(self) -> None:
        """What run_polling does after a stop signal: post_stop (albums), then shutdown."""
        if self.bot is not None:
            application = self.bot.application
            if application.post_stop is not None:
                await application.post_stop(application)
            await application.shutdown()
            self.bot = None
        if self.app is not None:
            self.app.close()
            self.app = None

    async def restart(self) -> None:
        """A process restart: a new App and Application on the same store, no orders imported."""
        await self.stop()
        await self.start(())

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        self.errors.append(f"{type(error).__name__}: {error}")

    @property
    def application(self) -> BotApplication:
        assert self.bot is not None, "the harness is not started"
        return self.bot.application

    @property
    def engine_app(self) -> App:
        assert self.app is not None, "the harness is not started"
        return self.app

    # -- feeding the bot ----------------------------------------------------------------------

    async def process(self, data: dict[str, Any]) -> None:
        """One raw update through PTB: Update.de_json -> Application.process_update."""
        self.tg.saw(data)
        update = Update.de_json(data, self.application.bot)
        await asyncio.wait_for(self.application.process_update(update), WAIT)

    async def flush_albums(self) -> None:
        """Hand over the albums being collected now (the adapter waits album_wait_seconds)."""
        assert self.bot is not None
        await asyncio.wait_for(self.bot.adapter.flush_albums(self.application.bot), WAIT)

    async def run_jobs(self, name: str | None = None) -> None:
        """Run the repeating jobs (those named `name`) once, as if their time had come."""
        queue = self.application.job_queue
        assert queue is not None
        jobs = queue.jobs() if name is None else queue.get_jobs_by_name(name)
        for job in jobs:
            await job.run(self.application)

    def press_data(self, chat_id: int, label: str) -> str:
        """The callback_data of the newest sent button whose label contains `label`."""
        for params in reversed(self.tg.sent(chat_id)):
            for text, data in inline_buttons(params.get("reply_markup")):
                if label in text:
                    return data
        raise AssertionError(f"no button {label!r} in {self.tg.texts(chat_id)[-3:]}")

    async def press(self, user: User, label: str) -> str:
        """`user` presses the newest button (in their chat) labelled like `label`."""
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
                and data in [d for _, d in inline_buttons(call.params.get("reply_markup"))]
                and isinstance(call.result, dict)
            ):
                return int(call.result["message_id"])
        raise AssertionError(f"no message with {data!r}")

    # -- reading the store --------------------------------------------------------------------

    def conversation(self, user: User) -> Conversation:
        conv = self.engine_app.engine.conversation(conversation_key(user.id))
        assert conv is not None, f"no conversation with {user.id}"
        return conv

    def state(self, user: User) -> str:
        """The customer's conversation state as "flow.state"."""
        conv = self.conversation(user)
        return f"{conv.flow}.{conv.state}"

    def count(self, sql: str) -> int:
        """A figure read from the SQLite file, as another process would see it."""
        # delivery records ride on the next unit of work (Store.mark_sent_soon): write them now
        self.engine_app.store.flush()
        with closing(sqlite3.connect(self.config.store.path)) as db:
            value = db.execute(sql).fetchone()[0]
        return int(value)
