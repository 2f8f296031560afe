"""The adapter's per-update flow: parse, authorise, limit, collect albums, run the turn, answer the
press, deliver the outbox. Everything the customer sees comes from the engine's replies (through
the outbox) or, for the flood and error notices, straight from the message catalog."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from typing import Any

from telegram import Bot, CallbackQuery, Update
from telegram.error import NetworkError, TelegramError
from telegram.ext import Application, ContextTypes

from bot.engine import Kind, turn_locale
from bot.handoff import DeskContext
from bot.telegram._api import remove_inline_keyboard
from bot.telegram._commands import register_commands
from bot.telegram._desk import TelegramDesk, answer_press
from bot.telegram._files import EvidenceDownloads
from bot.telegram._flood import IncomingLimit, Verdict
from bot.telegram._offloop import BUSY_RETRY_DELAYS, leased, retrying, use_store_threads
from bot.telegram._outbox import Outbox
from bot.telegram._parse import Incoming, conversation_key, dedupe_key, parse_update
from bot.telegram._processor import ChatLocks
from bot.telegram._watch import Watch

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


@dataclasses.dataclass
class _Album:
    """The parts of a media group seen so far in one chat."""

    group_id: str
    parts: list[tuple[Incoming, Update]]
    timer: asyncio.TimerHandle | None = None


class TelegramAdapter:
    """Handlers, jobs and hooks for a python-telegram-bot `Application` in front of one `App`."""

    def __init__(
        self,
        app: DeskContext,
        *,
        locks: ChatLocks | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.engine = app.engine
        settings = app.config.telegram
        self.locks = locks or ChatLocks()
        self.limit = IncomingLimit(settings.incoming_rate_limit, monotonic)
        self.outbox = Outbox(app.store, app.clock, self._undeliverable)
        self.desk = TelegramDesk(app, self.outbox)
        folder = settings.evidence_download_dir
        checked = settings.check_file_content or folder is not None
        self.downloads = EvidenceDownloads(folder) if checked else None
        self.album_wait = settings.album_wait_seconds
        self._albums: dict[int, _Album] = {}  # chat id -> the album being collected there
        # pauses between attempts of a turn that met a busy database (tests shorten them)
        self.busy_retry_delays: tuple[float, ...] = BUSY_RETRY_DELAYS
        self._album_tasks: set[asyncio.Task[None]] = set()
        self.watch: Watch | None = None  # metrics and the event log line (bot/telegram/_watch.py)

    # -- python-telegram-bot callbacks -------------------------------------------------------

    async def on_update(self, update: Update, context: Context) -> None:
        """Every update; the per-chat lock of the update processor is held around this."""
        if self.desk.handles(update):  # the agents' side: their group, their buttons
            await self.desk.on_update(context.bot, update)
            return
        incoming = parse_update(update)
        if incoming is None:
            if update.callback_query is not None:
                # a press in a group that is not the desk, or on an inline message: nothing to
                # do, but the client's spinner stops
                await self._answer(update.callback_query, None)
            return
        bot = context.bot
        query = update.callback_query
        if query is not None and incoming.user_id != incoming.chat_id:
            # in a private chat only its owner can press: anything else is forged
            await self._answer(query, await self._text(incoming, "button.stale"))
            return
        album = self._albums.get(incoming.chat_id)
        continues_album = album is not None and incoming.media_group_id == album.group_id
        if not continues_album:  # an album counts once against the limit
            verdict = self.limit.check(incoming.user_id)
            if verdict is not Verdict.ALLOW:
                if query is not None:
                    await self._answer(query, None)
                if verdict is Verdict.WARN:
                    await self._notify(bot, incoming, "telegram.flood")
                return
        if album is not None and not continues_album:
            # the album came first: its turn goes first, so the chat's order holds (and if it
            # fails, that is reported for the album; this update is still handled)
            await self._flush_album_safely(bot, incoming.chat_id)
        if incoming.media_group_id is not None:
            self._collect(bot, incoming, update)
            return
        await self._turn(bot, incoming, query)

    async def on_error(self, update: object, context: Context) -> None:
        """Log with the update id, apologise to the customer; other chats are not affected."""
        if not isinstance(update, Update):
            if isinstance(context.error, NetworkError):  # polling retries with a growing pause
                log.warning("Telegram cannot be reached (%s); retrying", context.error)
                return
            log.error("error outside of an update (a job?)", exc_info=context.error)
            return
        await self._fail(context.bot, update, context.error)

    async def start_up(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """post_init: register the command menu, send what was committed but not sent."""
        use_store_threads(asyncio.get_running_loop())
        try:
            await register_commands(application.bot, self.app.config.locale)
        except TelegramError as exc:  # the menu is a convenience: the bot works without it
            log.warning("bot commands not registered: %s", exc)
        sent = await self.outbox.deliver(application.bot)
        if sent:
            self.outbox.record_now()
            log.info("delivered %d message(s) left in the outbox", sent)
        try:
            await self.desk.post_due(application.bot)
        except TelegramError as exc:  # the deadline job tries again
            log.warning("agent desk: due cards not posted at start: %s", exc)

    async def shut_down(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """post_stop: an album still being collected is handled rather than lost; what was
        delivered is recorded as such."""
        await self.flush_albums(application.bot)
        self.outbox.record_now()

    def once(
        self, name: str, job: Callable[[Context], Coroutine[Any, Any, None]]
    ) -> Callable[[Context], Coroutine[Any, Any, None]]:
        """A repeating job that runs on one worker at a time: each worker's tick takes the job's
        lease or skips (every worker's JobQueue is only a timer; each job item is idempotent)."""

        async def tick(context: Context) -> None:
            async with leased(self.app.store, f"job:{name}") as lease:
                if lease is None:
                    log.debug("job %s: running on another worker, tick skipped", name)
                    return
                await job(context)

        return tick

    async def deliver_job(self, context: Context) -> None:
        """Repeating job: messages written elsewhere (agent desk, CLI) and earlier failures."""
        await self.outbox.deliver(context.bot)

    async def prune_job(self, context: Context) -> None:
        """Daily job: forget the handled update ids older than the retention."""
        days = self.app.config.store.processed_retention_days
        forgotten = await asyncio.to_thread(self._forget_processed, days)
        if forgotten:
            log.info("forgot %d handled update id(s) older than %d days", forgotten, days)

    def _forget_processed(self, days: int) -> int:
        with self.app.store.unit_of_work() as uow:
            return uow.forget_processed(self.app.clock.now() - timedelta(days=days))

    async def reminder_job(self, context: Context) -> None:
        """Repeating job: the one reminder of flows left unfinished."""
        if await asyncio.to_thread(self.engine.fire_reminders):
            await self.outbox.deliver(context.bot)

    # -- one turn ----------------------------------------------------------------------------

    async def _turn(
        self,
        bot: Bot,
        incoming: Incoming,
        query: CallbackQuery | None,
        also_processed: Iterable[str] = (),
    ) -> None:
        inbound = incoming.inbound
        if inbound.files and self.downloads is not None:
            files = [await self.downloads.fetch(bot, info) for info in inbound.files]
            inbound = dataclasses.replace(inbound, files=tuple(files))
        if inbound.kind is Kind.CONTACT:
            # the customer used the contact keyboard: the next plain reply takes it away
            self.outbox.reply_keyboard_shown(str(incoming.chat_id))
        started = time.perf_counter()
        # in a thread: a slow or locked database holds up this chat only; a busy one is tried
        # again with backoff, and only when it stays busy does the customer get the apology
        result = await retrying(self.busy_retry_delays, self.engine.handle, inbound)
        if self.watch is not None:
            self.watch.turn(incoming, result, time.perf_counter() - started)
        # Committed. From here on a failure must not stop the delivery of what was committed.
        if also_processed:
            await asyncio.to_thread(self._record_processed, also_processed)
        if query is not None:
            await self._answer(query, result.button_answer)
            if not result.duplicate and result.button_answer is None:
                # the press was taken: its buttons are spent, take them off the old message
                await self._remove_keyboard(bot, query)
        await self.outbox.deliver(bot, str(incoming.chat_id))
        await self.desk.after_turn(bot, incoming, result)

    def _record_processed(self, keys: Iterable[str]) -> None:
        """The other updates of an album: a later redelivery of one of them changes nothing."""
        keys = list(keys)
        if not keys:
            return
        try:
            with self.app.store.unit_of_work() as uow:
                for key in keys:
                    uow.mark_processed(key, self.app.clock.now())
        except Exception:  # only a redelivery guard: the turn itself has committed
            log.exception("album update ids %s not recorded", keys)

    async def _answer(self, query: CallbackQuery, text: str | None) -> None:
        await answer_press(query, text)

    async def _remove_keyboard(self, bot: Bot, query: CallbackQuery) -> None:
        message = query.message
        if message is None:
            return
        try:
            await remove_inline_keyboard(bot, message.chat.id, message.message_id)
        except TelegramError as exc:  # too old to edit, already edited: cosmetic only
            log.info("keyboard of message %s not removed: %s", message.message_id, exc)

    # -- albums ------------------------------------------------------------------------------

    def _collect(self, bot: Bot, incoming: Incoming, update: Update) -> None:
        """Add an album part; the album is handled `album_wait` after its latest part."""
        assert incoming.media_group_id is not None
        album = self._albums.get(incoming.chat_id)
        if album is None:
            album = self._albums[incoming.chat_id] = _Album(incoming.media_group_id, [])
        album.parts.append((incoming, update))
        if album.timer is not None:
            album.timer.cancel()
        album.timer = asyncio.get_running_loop().call_later(
            self.album_wait, self._album_due, bot, incoming.chat_id, album
        )

    def _album_due(self, bot: Bot, chat_id: int, album: _Album) -> None:
        task = asyncio.create_task(self._flush_due_album(bot, chat_id, album))
        self._album_tasks.add(task)
        task.add_done_callback(self._album_tasks.discard)

    async def _flush_due_album(self, bot: Bot, chat_id: int, album: _Album) -> None:
        async with self.locks.hold(chat_id):
            if self._albums.get(chat_id) is album:  # not already handled by a later update
                await self._flush_album_safely(bot, chat_id)

    async def flush_albums(self, bot: Bot) -> None:
        """Handle every album being collected now (at shutdown; tests use it to skip the wait)."""
        for chat_id in list(self._albums):
            async with self.locks.hold(chat_id):
                if chat_id in self._albums:
                    await self._flush_album_safely(bot, chat_id)

    async def _flush_album_safely(self, bot: Bot, chat_id: int) -> None:
        """Handle the chat's album; a failure is reported as the error handler would, for it."""
        first_update = self._albums[chat_id].parts[0][1]
        try:
            await self._flush_album(bot, chat_id)
        except Exception as exc:
            await self._fail(bot, first_update, exc)

    async def _flush_album(self, bot: Bot, chat_id: int) -> None:
        """One turn with every file of the album, deduplicated by the first part's update id."""
        album = self._albums.pop(chat_id)
        if album.timer is not None:
            album.timer.cancel()
        parts = sorted((incoming for incoming, _ in album.parts), key=lambda p: p.update_id)
        first = parts[0]
        files = tuple(f for part in parts for f in part.inbound.files)
        merged = dataclasses.replace(
            first,
            inbound=dataclasses.replace(first.inbound, files=files),
            message_ids=tuple(i for part in parts for i in part.message_ids),
        )
        others = [dedupe_key(p.update_id) for p in parts[1:]]
        await self._turn(bot, merged, None, also_processed=others)

    # -- notices outside the engine ----------------------------------------------------------

    async def _fail(self, bot: Bot, update: Update, error: BaseException | None) -> None:
        log.error("update %s failed", update.update_id, exc_info=error)
        if update.callback_query is not None:  # a press is answered whoever pressed where
            await self._answer(update.callback_query, None)
        try:
            incoming = parse_update(update)
        except Exception:
            log.exception("update %s cannot even be parsed", update.update_id)
            return
        if incoming is None:
            return
        await self._notify(bot, incoming, "telegram.error")

    async def _notify(self, bot: Bot, incoming: Incoming, key: str) -> None:
        """A catalog message sent directly: no write (a flood) or the writing failed (an error)."""
        try:
            await bot.send_message(incoming.chat_id, await self._text(incoming, key))
        except TelegramError as exc:
            log.warning("notice %s to %s not sent: %s", key, incoming.chat_id, exc)

    def _undeliverable(self, recipient: str) -> str:
        """What a customer is sent instead of a message Telegram refused, in their language."""
        catalog = self.app.catalog
        conv = self.engine.conversation(conversation_key(int(recipient)))
        locale = turn_locale(conv, catalog) if conv is not None else catalog.default
        return catalog.text(locale, "telegram.undeliverable")

    async def _text(self, incoming: Incoming, key: str) -> str:
        locale = await asyncio.to_thread(self._locale, incoming)
        return self.app.catalog.text(locale, key)

    def _locale(self, incoming: Incoming) -> str:
        """The customer's language; their Telegram client's when the store cannot tell."""
        catalog = self.app.catalog
        try:
            conv = self.engine.conversation(conversation_key(incoming.chat_id))
        except Exception:  # the store may be what failed: an apology must still go out
            log.exception("conversation of chat %s unreadable", incoming.chat_id)
            conv = None
        if conv is not None:
            return turn_locale(conv, catalog)
        return catalog.locale_for(incoming.inbound.language_code)
