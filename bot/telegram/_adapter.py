"""The adapter's per-update flow: parse, authorise, limit, collect albums, run the turn, answer the
press, deliver the outbox. Everything the customer sees comes from the engine's replies (through
the outbox) or, for the flood and error notices, straight from the message catalog."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import Bot, CallbackQuery, Update
from telegram.error import NetworkError, TelegramError
from telegram.ext import Application, ContextTypes

from bot.engine import Engine, Inbound, TurnResult, turn_locale
from bot.handoff import DeskContext
from bot.store import AlbumPart, ConversationKey, UnitOfWork
from bot.telegram._api import remove_inline_keyboard
from bot.telegram._commands import register_commands
from bot.telegram._desk import TelegramDesk, answer_press
from bot.telegram._files import EvidenceDownloads
from bot.telegram._flood import IncomingLimit, Verdict
from bot.telegram._offloop import BUSY_RETRY_DELAYS, leased, retrying, use_store_threads
from bot.telegram._outbox import Outbox, Reserved
from bot.telegram._parse import CHANNEL, Incoming, conversation_key, dedupe_key, parse_update
from bot.telegram._processor import ChatLocks
from bot.telegram._watch import Watch

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


# an album whose latest part is older than album_wait + this is handed over by the sweep (the
# worker that stored that part stopped before its timer fired)
ALBUM_GRACE = 2.0
ALBUM_SWEEP_SECONDS = 5.0  # how often the sweep looks (one worker at a time)
_EVERYTHING = datetime.max.replace(tzinfo=UTC)


class _AlbumWaits(Exception):
    """An update's turn found an album of its chat waiting: the album goes first."""


_STALE_ATTEMPTS = 3  # an album's parts read again at most this often when found handed over


class _AlbumStale(Exception):
    """An album's turn found some of its parts handed over by another worker meanwhile (their
    turn committed between this worker's read of the parts and its turn): rolled back, the
    parts are read again."""


def _handle_then_open(
    engine: Engine,
    inbound: Inbound,
    also: Callable[[UnitOfWork], None],
    reserved: Reserved | None,
) -> TurnResult:
    """A turn, then (committed) the chat's delivery opened in the same store thread."""
    result = engine.handle(inbound, also)
    if reserved is not None:
        reserved.open()
    return result


def _no_album_waiting(key: ConversationKey, uow: UnitOfWork) -> None:
    """Run in an update's turn, after its dedupe key (a duplicate never gets here): an album of
    the chat waiting rolls the turn back."""
    if uow.pending_album(key.channel, key.user_id) is not None:
        raise _AlbumWaits(key)


@dataclasses.dataclass
class _Waiting:
    """The latest part of a chat's album this worker stored, and the timer that hands the album
    over `album_wait` after it (if no later part came meanwhile, to this worker or another)."""

    group_id: str
    update_id: int
    timer: asyncio.TimerHandle


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
        # chat id -> the album part this worker stored last there (the parts are in the store)
        self._waiting: dict[int, _Waiting] = {}
        # pauses between attempts of a turn that met a busy database (tests shorten them)
        self.busy_retry_delays: tuple[float, ...] = BUSY_RETRY_DELAYS
        self._album_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False  # post_stop ran: no album timers any more
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
        waiting = self._waiting.get(incoming.chat_id)
        group = incoming.media_group_id
        continues_album = waiting is not None and group == waiting.group_id
        if not continues_album:  # an album counts once against the limit (of this worker)
            verdict = self.limit.check(incoming.user_id)
            if verdict is not Verdict.ALLOW:
                if query is not None:
                    await self._answer(query, None)
                if verdict is Verdict.WARN:
                    await self._notify(bot, incoming, "telegram.flood")
                return
        if group is not None:
            await self._collect(bot, incoming, update, group)
            return
        # an album of the chat still waiting (here or on another worker) goes first: see _turn
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
        """post_stop: an album this worker is collecting is handled now rather than by another
        worker's sweep later; what was delivered is recorded as such."""
        bot = application.bot
        self._stopping = True  # a part stored from now on waits for another worker's sweep
        for chat_id in list(self._waiting):
            async with self.locks.hold(chat_id):
                if self._forget_waiting(chat_id):
                    await self._hand_over(bot, chat_id)
        # albums whose timer fired just before: finished while the bot can still send
        await asyncio.gather(*self._album_tasks, return_exceptions=True)
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

    async def album_job(self, context: Context) -> None:
        """Repeating job: albums whose latest part is older than album_wait + ALBUM_GRACE (the
        worker that stored it stopped before handing the album over) are handed over here."""
        idle = self.app.clock.now() - timedelta(seconds=self.album_wait + ALBUM_GRACE)
        await self._hand_over_idle(context.bot, idle)

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
        album: Callable[[UnitOfWork], None] | None = None,
    ) -> None:
        """One turn of the engine, then the press answered and the replies delivered. `album`:
        this is an album's turn, and `album` drops its parts in the turn's unit of work."""
        inbound = incoming.inbound
        if inbound.files and self.downloads is not None:
            files = [await self.downloads.fetch(bot, info) for info in inbound.files]
            inbound = dataclasses.replace(inbound, files=tuple(files))
        # the chat's delivery, taken now if that needs no waiting: the turn's store thread then
        # reads the replies' queue right after its commit (one hop to a thread, not two)
        reserved = await self.outbox.reserve(str(incoming.chat_id))
        try:
            result = await self._engine_turn(bot, incoming, inbound, album, reserved)
            # Committed. From here on a failure must not stop the delivery of what was
            # committed. The press is answered (and its spent buttons taken off) while the
            # replies go out: neither waits for the other.
            press = (
                None
                if query is None
                else asyncio.create_task(self._after_press(bot, query, result))
            )
            try:
                await self.outbox.deliver(bot, str(incoming.chat_id), reserved)
            finally:
                if press is not None:
                    await press
        finally:
            if reserved is not None:
                reserved.release()
        await self.desk.after_turn(bot, incoming, result)

    async def _engine_turn(
        self,
        bot: Bot,
        incoming: Incoming,
        inbound: Inbound,
        album: Callable[[UnitOfWork], None] | None,
        reserved: Reserved | None,
    ) -> TurnResult:
        started = time.perf_counter()
        # in a thread: a slow or locked database holds up this chat only; a busy one is tried
        # again with backoff, and only when it stays busy does the customer get the apology
        delays = self.busy_retry_delays
        try:
            # an ordinary update's turn looks for a waiting album first, in its own unit of
            # work (one indexed query, under the chat's transaction lock)
            also = album or functools.partial(_no_album_waiting, inbound.key)
            result = await retrying(delays, _handle_then_open, self.engine, inbound, also, reserved)
        except _AlbumWaits:
            # an album of the chat waits, stored here or by another worker: it came first, so
            # its turn goes first and the chat's order holds (the turn above rolled back; a
            # failure of the album is reported for it, and this update is still handled). The
            # album's turn delivers to the chat itself: the reservation is let go first.
            if reserved is not None:
                reserved.release()
            await self._hand_over(bot, incoming.chat_id)
            started = time.perf_counter()
            result = await retrying(delays, self.engine.handle, inbound)
        if self.watch is not None:
            self.watch.turn(incoming, result, time.perf_counter() - started)
        return result

    async def _after_press(self, bot: Bot, query: CallbackQuery, result: TurnResult) -> None:
        await self._answer(query, result.button_answer)
        if not result.duplicate and result.button_answer is None:
            # the press was taken: its buttons are spent, take them off the old message
            await self._remove_keyboard(bot, query)

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
    #
    # An album arrives as one update per file, all with its media_group_id, and becomes ONE
    # turn. Its parts wait in the store (album_parts), each stored before its update is
    # acknowledged, so that a crash loses none and the parts may reach different workers. The
    # worker that stored a chat's latest part hands the album over `album_wait` after it; any
    # other update of the chat hands it over first, on whichever worker it arrives; the sweep
    # (album_job) takes what a stopped worker left. Handing over reads the parts, merges them
    # into one event deduplicated by the first part's update id and runs the turn, which drops
    # the parts and records their update ids in its own unit of work: two workers handing the
    # same album over at once make one turn (the second is a duplicate).

    async def _collect(self, bot: Bot, incoming: Incoming, update: Update, group: str) -> None:
        """Store an album part; the album is handed over `album_wait` after its latest part."""
        part = AlbumPart(
            channel=CHANNEL,
            chat=str(incoming.chat_id),
            group_id=group,
            update_id=incoming.update_id,
            dedupe_key=dedupe_key(incoming.update_id),
            payload=update.to_json(),
            received_at=self.app.clock.now(),
        )
        waits, oldest = await retrying(self.busy_retry_delays, self._store_part, part)
        if oldest is not None and oldest != group:
            # another album of the chat came first: its turn goes first (the chat's order)
            await self._hand_over(bot, incoming.chat_id, keep=group)
        if not waits or self._stopping:
            # a redelivered part of an album handed over already: nothing to do; or this worker
            # is stopping: the part is stored, another worker's sweep hands the album over
            return
        waiting = self._waiting.get(incoming.chat_id)
        latest = part.update_id
        if waiting is not None:
            waiting.timer.cancel()
            if waiting.group_id == group:
                latest = max(latest, waiting.update_id)
        timer = asyncio.get_running_loop().call_later(
            self.album_wait, self._album_due, bot, incoming.chat_id
        )
        self._waiting[incoming.chat_id] = _Waiting(group, latest, timer)

    def _store_part(self, part: AlbumPart) -> tuple[bool, str | None]:
        """(whether the part waits now, the album of the chat's oldest part before it)."""
        with self.app.store.unit_of_work() as uow:
            # after any album turn of the chat in progress on another worker has committed: a
            # part of it sent again must see its update id recorded, not be stored anew
            uow.lock_chat(part.channel, part.chat)
            oldest = uow.pending_album(part.channel, part.chat)
            return uow.add_album_part(part), oldest

    def _album_due(self, bot: Bot, chat_id: int) -> None:
        waiting = self._waiting.get(chat_id)
        if waiting is None:
            return
        task = asyncio.create_task(self._hand_over_due(bot, chat_id, waiting))
        self._album_tasks.add(task)
        task.add_done_callback(self._album_tasks.discard)

    async def _hand_over_due(self, bot: Bot, chat_id: int, waiting: _Waiting) -> None:
        async with self.locks.hold(chat_id):
            if self._waiting.get(chat_id) is not waiting:  # handed over, or a later part came
                return
            del self._waiting[chat_id]
            # only if no worker stored a later part meanwhile (its own timer hands it over)
            await self._hand_over(bot, chat_id, latest=waiting.update_id)

    def _forget_waiting(self, chat_id: int) -> bool:
        waiting = self._waiting.pop(chat_id, None)
        if waiting is None:
            return False
        waiting.timer.cancel()
        return True

    async def flush_albums(self, bot: Bot) -> None:
        """Hand over every album waiting now, stored by this worker or any other (tests use it
        to skip the wait)."""
        await self._hand_over_idle(bot, _EVERYTHING)

    async def _hand_over_idle(self, bot: Bot, before: datetime) -> None:
        """Hand over the albums whose latest part was received before `before`."""
        chats = await retrying(self.busy_retry_delays, self._idle_albums, before)
        for chat in chats:
            chat_id = int(chat)
            async with self.locks.hold(chat_id):
                await self._hand_over(bot, chat_id, idle_before=before)

    def _idle_albums(self, before: datetime) -> list[str]:
        with self.app.store.unit_of_work() as uow:
            return uow.idle_albums(CHANNEL, before)

    async def _hand_over(
        self,
        bot: Bot,
        chat_id: int,
        *,
        keep: str | None = None,
        latest: int | None = None,
        idle_before: datetime | None = None,
    ) -> None:
        """Hand the chat's waiting albums to the engine, oldest first, one turn each (the
        caller holds the chat's lock). `keep`: that album is still being collected; `latest`:
        only if that part is still the chat's latest; `idle_before`: only if the latest part
        was received before then."""
        parts = await self._read_parts(chat_id)
        if not parts:
            return
        if latest is not None and parts[-1].update_id != latest:
            return
        if idle_before is not None and parts[-1].received_at >= idle_before:
            return
        groups = dict.fromkeys(p.group_id for p in parts if p.group_id != keep)
        for group in groups:
            album = [p for p in parts if p.group_id == group]
            for _ in range(_STALE_ATTEMPTS):
                if not await self._album_turn_safely(bot, album):
                    break
                # another worker handed some of these parts over meanwhile: what is left of
                # the album (a part that came late to another worker, say) is its own turn
                again = await self._read_parts(chat_id)
                if again is None:
                    return
                album = [p for p in again if p.group_id == group]
                if not album:
                    break
        waiting = self._waiting.get(chat_id)
        if waiting is not None and waiting.group_id in groups:  # its timer has nothing to do
            self._forget_waiting(chat_id)

    async def _read_parts(self, chat_id: int) -> list[AlbumPart] | None:
        """The chat's waiting parts; None when the store cannot say (they stay there: a later
        update or the sweep hands them over)."""
        try:
            return await retrying(self.busy_retry_delays, self._album_parts, chat_id)
        except Exception:
            log.exception("album parts of chat %s unreadable", chat_id)
            return None

    def _album_parts(self, chat_id: int) -> list[AlbumPart]:
        with self.app.store.unit_of_work() as uow:
            return uow.album_parts(CHANNEL, str(chat_id))

    async def _album_turn_safely(self, bot: Bot, parts: list[AlbumPart]) -> bool:
        """One album's turn; a failure is reported as the error handler would, for its first
        part, and its parts are dropped (the customer was told, as for any failed update).
        True: some parts were handed over by another worker meanwhile, nothing was done."""
        update_ids = [p.update_id for p in parts]
        received: list[tuple[Incoming, Update]] = []
        for part in parts:
            try:
                update = Update.de_json(json.loads(part.payload), bot)
                incoming = parse_update(update)
            except Exception:
                log.exception("album part %s cannot be read again; left out", part.update_id)
                continue
            if incoming is not None:
                received.append((incoming, update))
        try:
            if not received:
                raise ValueError(f"no readable part in album parts {update_ids}")
            await self._album_turn(bot, [incoming for incoming, _ in received], update_ids)
        except _AlbumStale:
            log.info("album parts %s: some handed over meanwhile; read again", update_ids)
            return True
        except Exception as exc:
            if received:
                await self._fail(bot, received[0][1], exc)
            else:
                log.error("album %s dropped", update_ids, exc_info=exc)
            try:
                await asyncio.to_thread(self._drop_parts, update_ids)
            except Exception:  # they stay: the sweep tries the album again later
                log.exception("album parts %s not dropped", update_ids)
        return False

    async def _album_turn(self, bot: Bot, parts: list[Incoming], update_ids: list[int]) -> None:
        """One turn with every file of the album, deduplicated by the first part's update id;
        the parts are dropped (their update ids recorded) with the turn."""
        first = parts[0]
        files = tuple(f for part in parts for f in part.inbound.files)
        merged = dataclasses.replace(
            first,
            inbound=dataclasses.replace(first.inbound, files=files),
            message_ids=tuple(i for part in parts for i in part.message_ids),
        )
        clock = self.app.clock

        def drop(uow: UnitOfWork) -> None:
            if uow.drop_album_parts(CHANNEL, update_ids, clock.now()) != len(update_ids):
                raise _AlbumStale(update_ids)  # rolls the turn back

        await self._turn(bot, merged, None, album=drop)

    def _drop_parts(self, update_ids: list[int]) -> None:
        with self.app.store.unit_of_work() as uow:
            uow.drop_album_parts(CHANNEL, update_ids, self.app.clock.now())

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
