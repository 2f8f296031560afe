"""Delivery of the outbox: messages committed with a turn (or by the agent desk, the CLI) are sent
to Telegram in order and marked sent once Telegram has taken them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.clock import Clock
from bot.engine import Reply
from bot.store import OutboxMessage, Store
from bot.telegram._api import send_text
from bot.telegram._parse import CHANNEL
from bot.telegram._processor import ChatLocks
from bot.telegram._render import copy_caption, has_contact_request, render

log = logging.getLogger(__name__)

BATCH = 100
RECORD_WITHIN = 0.2  # seconds: a delivered message is marked sent in the database by then
RECORD_RETRY = 1.0  # seconds: after a failure to write the records


class Outbox:
    """Sends the pending outbox messages of the Telegram channel, each recipient's in order."""

    # A message is marked sent only after Telegram accepted it, so a crash in between sends it
    # again at the next start (at least once). The mark rides on the next unit of work (the next
    # turn, usually: no transaction of its own), or is written RECORD_WITHIN seconds later at the
    # latest, so that window is at most that wide. A temporary failure
    # (network, a flood wait past the rate limiter's retries) leaves the recipient's messages
    # queued, in order, for the next round; a permanent one (the customer blocked the bot, the chat
    # is gone) is logged and dropped so that it cannot hold back later messages forever.

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
        # chats that may still show a contact-request keyboard: the next reply without buttons
        # takes it away (kept in memory: after a restart the one-time keyboard is hidden anyway)
        self._reply_keyboards: set[str] = set()
        self._record: asyncio.TimerHandle | None = None  # the flush of the delivery records

    def reply_keyboard_shown(self, recipient: str) -> None:
        """Remember that the chat may show a reply keyboard (e.g. the customer just used it)."""
        self._reply_keyboards.add(recipient)

    async def deliver(self, bot: Bot, recipient: str | None = None) -> int:
        """Send what is pending for one recipient, or for all; return how many were handled."""
        if recipient is not None:
            sent, _ = await self._deliver_to(bot, recipient)
            return sent
        total = 0
        stuck: set[str] = set()
        while True:
            with self._store.unit_of_work() as uow:
                pending = uow.pending_outbox(BATCH, CHANNEL)
            recipients = list(
                dict.fromkeys(m.recipient for m in pending if m.recipient not in stuck)
            )
            if not recipients:
                return total
            for each in recipients:
                sent, done = await self._deliver_to(bot, each)
                total += sent
                if not done:
                    stuck.add(each)

    async def _deliver_to(self, bot: Bot, recipient: str) -> tuple[int, bool]:
        """(messages handled, whether the recipient's queue is empty now)."""
        try:
            chat_id = int(recipient)
        except ValueError:
            chat_id = None
        sent = 0
        async with self._locks.hold(chat_id or 0):
            while True:
                with self._store.unit_of_work() as uow:
                    pending = uow.pending_outbox(BATCH, CHANNEL, recipient)
                if not pending:
                    return sent, True
                for i, message in enumerate(pending):
                    if chat_id is None:
                        log.error(
                            "outbox %s: %r is no chat id; dropped", message.outbox_id, recipient
                        )
                    elif await self._send(bot, chat_id, message, pending[i + 1 :]):
                        sent += 1
                    else:
                        return sent, False
                    self._mark_sent(message)
                if len(pending) < BATCH:  # that was all; a writer after the read delivers its own
                    return sent, True

    async def _send(
        self, bot: Bot, chat_id: int, message: OutboxMessage, later: list[OutboxMessage]
    ) -> bool:
        """Send one message; False when it should be tried again later (True: sent or dropped)."""
        recipient = str(chat_id)
        try:
            reply = Reply.from_payload(message.payload)
            # a message of another chat copied here (an agent's file, from the agent desk),
            # signed by the reply's text
            copy = reply.copy
            caption: str | None = None
            # a contact keyboard about to be shown again need not be taken away first
            remove = copy is None and (
                recipient in self._reply_keyboards
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
            self._reply_keyboards.add(recipient)
        elif remove and not reply.buttons:
            self._reply_keyboards.discard(recipient)
        return True

    async def _notify_refused(self, bot: Bot, chat_id: int) -> None:
        if self._fallback is None or chat_id < 0:  # a group (the agent desk) is told by the log
            return
        try:
            await send_text(bot, chat_id, self._fallback(str(chat_id)), None)
        except TelegramError as exc:
            log.warning("notice to %s after a refused message not sent: %s", chat_id, exc)

    def _mark_sent(self, message: OutboxMessage) -> None:
        assert message.outbox_id is not None  # read back from the store
        self._store.mark_sent_soon([message.outbox_id], self._clock.now())
        if self._record is None:
            self._record = asyncio.get_running_loop().call_later(RECORD_WITHIN, self.record_now)

    def record_now(self) -> None:
        """Write the delivery records still held (if the next turn has not done it yet)."""
        if self._record is not None:
            self._record.cancel()
            self._record = None
        try:
            self._store.flush()
        except Exception:  # e.g. the database is busy: try again shortly, turns may meanwhile
            log.exception("outbox: delivery records not written; trying again")
            self._record = asyncio.get_running_loop().call_later(RECORD_RETRY, self.record_now)
