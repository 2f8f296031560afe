"""Delivery of the outbox: messages committed with a turn (or by the agent desk, the CLI) are sent
to Telegram in order and marked sent once Telegram has taken them."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.clock import Clock
from bot.engine import Reply
from bot.store import Lease, OutboxMessage, Store
from bot.telegram._api import send_text
from bot.telegram._parse import CHANNEL
from bot.telegram._processor import ChatLocks
from bot.telegram._render import copy_caption, has_contact_request, render

log = logging.getLogger(__name__)

BATCH = 100
RECORD_WITHIN = 0.2  # seconds: a delivered message is marked sent in the database by then
RECORD_RETRY = 1.0  # seconds: after a failure to write the records
# another worker delivers a chat we have messages for: look again this often, this long at most
# (it may have read the chat's queue before our turn committed); past that the sweep sends them
LEASE_RETRY = 0.01
LEASE_WAIT = 5.0
# recipients delivered at once by this process: each holds a pooled connection for its lease
# (see bot/telegram/_offloop.py STORE_THREADS: threads + leases stay within the pool)
LEASES_AT_ONCE = 4


class _Held:
    """A recipient's lease (Store.lease) as the outbox uses it, each step one call from a store
    thread: take it and read the queue; record deliveries and read on; record and let go."""

    def __init__(self, store: Store, recipient: str) -> None:
        self._recipient = recipient
        self._manager = store.recipient_lease(CHANNEL, recipient, BATCH)
        self._lease: Lease | None = None
        # whether the chat may still show a contact-request reply keyboard: the next reply
        # without buttons takes it away. Read with the pending messages (no query of its own),
        # written back at close if it changed, by the lease's holder only.
        self.reply_keyboard = False
        self._reply_keyboard_read = False

    def open(self) -> list[OutboxMessage] | None:
        """The recipient's first pending messages; None: another process holds the recipient."""
        opened = self._manager.__enter__()
        if opened is None:
            self._manager.__exit__(None, None, None)
            return None
        self._lease = opened.lease
        self.reply_keyboard = self._reply_keyboard_read = opened.reply_keyboard
        return opened.pending

    def _read(self) -> list[OutboxMessage]:
        assert self._lease is not None
        return self._lease.pending_outbox(BATCH, CHANNEL, self._recipient)

    def _record(self, delivered: list[int], at: datetime) -> None:
        assert self._lease is not None
        for outbox_id in delivered:
            self._lease.record_sent(outbox_id, at)

    def record_and_read(self, delivered: list[int], at: datetime) -> list[OutboxMessage]:
        self._record(delivered, at)
        return self._read()

    def abandon(self) -> None:
        """Let go of a lease opened but never delivered (nothing to record); never raises."""
        try:
            self._manager.__exit__(None, None, None)
        except Exception:
            log.exception("outbox %s: letting go of the lease failed", self._recipient)

    def close(self, delivered: list[int], at: datetime) -> None:
        try:
            self._record(delivered, at)
            if self.reply_keyboard != self._reply_keyboard_read:
                assert self._lease is not None
                self._lease.set_reply_keyboard(CHANNEL, self._recipient, self.reply_keyboard)
        finally:
            self._manager.__exit__(None, None, None)


class Reserved:
    """A recipient's delivery taken before a turn of its chat (the outbox's chat lock and a
    lease slot, both free at that moment), so that the turn's own store thread takes the lease
    and reads the queue right after its commit: one hop to a store thread instead of two.
    While reserved, a job's delivery to the chat waits for the turn (as it would for its
    delivery). A lease opened for a turn that never delivers (cancelled, failed) is let go."""

    def __init__(self, outbox: Outbox, recipient: str, chat: int) -> None:
        self._outbox = outbox
        self._chat = chat
        self.recipient = recipient
        self.held = _Held(outbox.store, recipient)
        self._pending: list[OutboxMessage] | None = None  # opened, not yet handed to delivery
        self._abandoned = False  # released before delivery took it
        self._state = threading.Lock()  # open() runs in a store thread, the rest on the loop
        self._taken = True

    def open(self) -> None:
        """In the store thread, after the turn committed: never raises (the turn stands; the
        delivery then goes the usual way)."""
        try:
            pending = self.held.open()
        except Exception:
            log.exception("outbox %s: reading the queue after the turn failed", self.recipient)
            return
        with self._state:
            keep = not self._abandoned
            if keep:
                self._pending = pending
        if not keep and pending is not None:
            self.held.abandon()  # the turn is gone: the lease with it

    def take(self) -> list[OutboxMessage] | None:
        """What was opened, for the delivery, which closes the lease from now on."""
        with self._state:
            pending, self._pending = self._pending, None
            return pending

    def release(self) -> None:
        """Let go of the chat lock and the lease slot; a lease opened but never delivered is
        let go in a store thread."""
        with self._state:
            self._abandoned = True
            opened, self._pending = self._pending, None
        if opened is not None:
            asyncio.get_running_loop().run_in_executor(None, self.held.abandon)
        if self._taken:
            self._taken = False
            self._outbox.give_back(self._chat)


class Outbox:
    """Sends the pending outbox messages of the Telegram channel, each recipient's in order."""

    # A message is marked sent only after Telegram accepted it, so a crash in between sends it
    # again at the next start (at least once). The mark rides on the next unit of work (the next
    # turn, usually: no transaction of its own), or is written RECORD_WITHIN seconds later at the
    # latest, so that window is at most that wide. A temporary failure
    # (network, a flood wait past the rate limiter's retries) leaves the recipient's messages
    # queued, in order, for the next round; a permanent one (the customer blocked the bot, the chat
    # is gone) is logged and dropped so that it cannot hold back later messages forever.
    #
    # Several workers on one database (PostgreSQL): a recipient's queue is delivered by the one
    # worker holding its lease (`Store.lease`, a session advisory lock), in outbox order, every
    # delivery recorded (committed) before the lease is let go. The window for a duplicate is the
    # batch being delivered (usually a turn's one or two replies): a worker killed after Telegram
    # accepted a message and before the record committed; the next holder sends it again.
    # On SQLite (one process) a record rides on the next unit of work as described above.
    #
    # A contact-request reply keyboard stays up until a message takes it away: the next reply
    # without buttons does, when the recipient's flag (recipient_state) says it may be showing.
    # The flag is the lease holder's: read with the pending messages when the lease opens,
    # written back before it is let go only if a delivery changed it (once when the keyboard is
    # shown, once when it is taken away), so any worker, and a restarted one, knows it.

    def __init__(
        self, store: Store, clock: Clock, fallback: Callable[[str], str] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        # the short text sent instead of a message Telegram refuses for good (by recipient):
        # never silence, and something the customer can act on
        self._fallback = fallback
        self.refused = 0  # messages Telegram refused for good (logged with its reason)
        # separate from the per-chat update locks: the repeating job delivers outside of any update
        self._locks = ChatLocks()
        self._record: asyncio.TimerHandle | None = None  # the flush of the delivery records
        self._tasks: set[asyncio.Task[None]] = set()
        self._leases = asyncio.Semaphore(LEASES_AT_ONCE)

    @property
    def store(self) -> Store:
        return self._store

    async def reserve(self, recipient: str) -> Reserved | None:
        """Take the recipient's delivery for a turn about to run, if that needs no waiting
        (its chat lock and a lease slot free); None: deliver the usual way after the turn."""
        chat = _chat_of(recipient)
        if chat is None or self._leases.locked() or not await self._locks.try_take(chat):
            return None
        await self._leases.acquire()  # not locked: taken at once
        return Reserved(self, recipient, chat)

    def give_back(self, chat: int) -> None:
        self._leases.release()
        self._locks.give_back(chat)

    async def deliver(
        self, bot: Bot, recipient: str | None = None, reserved: Reserved | None = None
    ) -> int:
        """Send what is pending for one recipient, or for all; return how many were handled.
        `reserved`: the recipient's, opened by its turn (released here)."""
        if reserved is not None:
            try:
                pending = reserved.take()
                if pending is not None:
                    chat = _chat_of(reserved.recipient)
                    sent, _ = await self._deliver_held(
                        bot, reserved.held, pending, chat, reserved.recipient
                    )
                    return sent
            finally:
                reserved.release()
            recipient = reserved.recipient  # not opened: another worker holds it, or a failure
        if recipient is not None:
            sent, _ = await self._deliver_to(bot, recipient)
            return sent
        total = 0
        stuck: set[str] = set()
        while True:
            pending = await asyncio.to_thread(self._pending, None)
            recipients = list(
                dict.fromkeys(m.recipient for m in pending if m.recipient not in stuck)
            )
            if not recipients:
                return total
            for each in recipients:
                chat = _chat_of(each)
                if chat is not None and self._locks.busy(chat):
                    # a turn or another delivery of this process has the chat in hand and sends
                    # its queue: no waiting behind it (a turn may take seconds on a busy
                    # database); what it leaves is the next round's
                    stuck.add(each)
                    continue
                sent, done = await self._deliver_to(bot, each)
                total += sent
                if not done:
                    stuck.add(each)

    def _pending(self, recipient: str | None) -> list[OutboxMessage]:
        with self._store.unit_of_work() as uow:
            return uow.pending_outbox(BATCH, CHANNEL, recipient)

    async def _deliver_to(self, bot: Bot, recipient: str) -> tuple[int, bool]:
        """(messages handled, whether the recipient's queue is empty now)."""
        chat_id = _chat_of(recipient)
        waited = 0.0
        async with self._locks.hold(chat_id or 0):
            while True:
                async with self._leases:
                    held = _Held(self._store, recipient)
                    # one hop to a store thread takes the lease and reads the queue, one more
                    # records the deliveries and lets go (a hop costs more than the SQL here);
                    # after a turn, its own hop took the lease already (Reserved)
                    pending = await asyncio.to_thread(held.open)
                    if pending is not None:
                        return await self._deliver_held(bot, held, pending, chat_id, recipient)
                # another worker is sending to this chat: wait until it has sent ours too, or
                # let go of the chat and take it over
                if not await asyncio.to_thread(self._pending, recipient):
                    return 0, True
                if waited >= LEASE_WAIT:
                    return 0, False
                await asyncio.sleep(LEASE_RETRY)
                waited += LEASE_RETRY

    async def _deliver_held(
        self,
        bot: Bot,
        held: _Held,
        pending: list[OutboxMessage],
        chat_id: int | None,
        recipient: str,
    ) -> tuple[int, bool]:
        sent, delivered = 0, []
        try:
            while pending:
                for i, message in enumerate(pending):
                    if chat_id is None:
                        log.error(
                            "outbox %s: %r is no chat id; dropped", message.outbox_id, recipient
                        )
                    elif await self._send(bot, chat_id, message, pending[i + 1 :], held):
                        sent += 1
                    else:
                        return sent, False
                    assert message.outbox_id is not None  # read back from the store
                    delivered.append(message.outbox_id)
                if len(pending) < BATCH:  # that was all; a writer after the read sends its own
                    return sent, True  # (or waits for this lease to end and sends it then)
                pending = await asyncio.to_thread(held.record_and_read, delivered, self._now())
                delivered = []
            return sent, True
        finally:
            # recorded before the lease is let go (the crash window: a send not yet recorded)
            await asyncio.to_thread(held.close, delivered, self._now())
            self._schedule_record()

    def _now(self) -> datetime:
        return self._clock.now()

    async def _send(
        self,
        bot: Bot,
        chat_id: int,
        message: OutboxMessage,
        later: list[OutboxMessage],
        held: _Held,
    ) -> bool:
        """Send one message; False when it should be tried again later (True: sent or dropped)."""
        try:
            reply = Reply.from_payload(message.payload)
            # a message of another chat copied here (an agent's file, from the agent desk),
            # signed by the reply's text
            copy = reply.copy
            caption: str | None = None
            # a contact keyboard about to be shown again need not be taken away first
            remove = copy is None and (
                held.reply_keyboard
                and not any(has_contact_request(Reply.from_payload(m.payload)) for m in later)
            )
            if copy is not None:
                caption, parts = copy_caption(reply)
            else:
                parts = render(reply, remove_reply_keyboard=remove)
        except (KeyError, TypeError, ValueError):
            log.exception(
                "outbox %s: cannot render %r; dropped", message.outbox_id, message.payload
            )
            return True
        try:
            if copy is not None:
                await bot.copy_message(chat_id, copy.from_chat_id, copy.message_id, caption=caption)
            for part in parts:
                await send_text(bot, chat_id, part.text, part.reply_markup)
        except Forbidden as exc:  # blocked, chat gone: nothing more can reach them
            self.refused += 1
            log.error("outbox %s to %s: refused (%s); dropped", message.outbox_id, chat_id, exc)
            return True
        except BadRequest as exc:  # this message cannot be sent (too long a keyboard...)
            self.refused += 1
            log.error(
                "outbox %s to %s: Telegram refused it (%s, key %s); a short notice instead",
                message.outbox_id,
                chat_id,
                exc,
                message.payload.get("key"),
            )
            await self._notify_refused(bot, chat_id)
            return True
        except TelegramError as exc:
            log.warning("outbox %s to %s: %s; will retry", message.outbox_id, chat_id, exc)
            return False
        if has_contact_request(reply):
            held.reply_keyboard = True
        elif remove and not reply.buttons:
            held.reply_keyboard = False
        return True

    async def _notify_refused(self, bot: Bot, chat_id: int) -> None:
        if self._fallback is None or chat_id < 0:  # a group (the agent desk) is told by the log
            return
        try:
            text = await asyncio.to_thread(self._fallback, str(chat_id))  # reads the store
            await send_text(bot, chat_id, text, None)
        except TelegramError as exc:
            log.warning("notice to %s after a refused message not sent: %s", chat_id, exc)

    def _schedule_record(self) -> None:
        """Records held by the store (SQLite: see Store.mark_sent_soon) are written by then."""
        if self._record is None:
            self._record = asyncio.get_running_loop().call_later(RECORD_WITHIN, self._record_due)

    def _record_due(self) -> None:
        self._record = None
        task = asyncio.create_task(self._record_in_thread())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_in_thread(self) -> None:
        try:
            await asyncio.to_thread(self._store.flush)
        except Exception:  # e.g. the database is busy: try again shortly, turns may meanwhile
            log.exception("outbox: delivery records not written; trying again")
            if self._record is None:
                loop = asyncio.get_running_loop()
                self._record = loop.call_later(RECORD_RETRY, self._record_due)

    def record_now(self) -> None:
        """Write the delivery records still held (at start and stop: nothing else runs)."""
        if self._record is not None:
            self._record.cancel()
            self._record = None
        try:
            self._store.flush()
        except Exception:
            log.exception("outbox: delivery records not written; those messages may go again")


def _chat_of(recipient: str) -> int | None:
    try:
        return int(recipient)
    except ValueError:
        return None
