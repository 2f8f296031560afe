"""The agent desk in a Telegram supergroup: a forum topic per case holding its card and evidence,
the customer's messages copied in, the agents' buttons, commands and messages passed to the desk
(bot/handoff), which decides everything; this module only talks to Telegram."""

from __future__ import annotations

import html
import logging
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import CallbackQueryLimit
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.domain import Evidence, EvidenceKind, SentAs
from bot.engine import (
    Button,
    HandoffEnded,
    HandoffRequested,
    RelayedToAgent,
    Reply,
    TicketAppealed,
    TicketSupplemented,
    TurnResult,
)
from bot.handoff import (
    COMMAND_ACTIONS,
    DESK_COMMANDS,
    PRESS_PREFIX,
    Agent,
    AgentMessage,
    Card,
    Desk,
    DeskContext,
    Done,
    case_ref,
    parse_press,
    stored,
)
from bot.store import ConversationKey, DeskCase
from bot.telegram._api import send_text
from bot.telegram._outbox import Outbox
from bot.telegram._parse import (
    CHANNEL,
    Incoming,
    conversation_key,
    dedupe_key,
    is_service_message,
    split_command,
)
from bot.telegram._processor import ChatLocks
from bot.telegram._render import render

log = logging.getLogger(__name__)
NOTE_REACTION = "✍"  # on an agent's message kept as a note (never sent to the customer)

Context = ContextTypes.DEFAULT_TYPE
ANSWER_LIMIT = int(CallbackQueryLimit.ANSWER_CALLBACK_QUERY_TEXT_LENGTH)


async def answer_press(query: CallbackQuery, text: str | None) -> None:
    """Answer a button press (with a short text); a failure to answer changes nothing else."""
    try:
        await query.answer(text[:ANSWER_LIMIT] if text else None)
    except TelegramError as exc:  # e.g. the query is too old: what the press did stands
        log.info("callback query %s not answered: %s", query.id, exc)


class TelegramDesk:
    """Posts cases to the agent chat and feeds the agents' updates to the desk."""

    def __init__(self, ctx: DeskContext, outbox: Outbox) -> None:
        self.desk = Desk(ctx, CHANNEL)
        self.outbox = outbox
        # one card at a time per case: two at once would open two topics
        self._cases = ChatLocks()
        self._forum: bool | None = None  # None: not known yet; False: the group has no topics

    @property
    def chat_id(self) -> int | None:
        return self.desk.chat_id

    # -- which updates are the desk's --------------------------------------------------------

    def handles(self, update: Update) -> bool:
        """Desk buttons anywhere, group messages, and an agent's desk command in private."""
        query = update.callback_query
        if query is not None:
            return (query.data or "").startswith(PRESS_PREFIX)
        message = update.message
        if message is None:
            return False
        if message.chat.type != Chat.PRIVATE:
            return True
        command = split_command(message.text)
        user = message.from_user
        return (
            command is not None
            and command[0] in DESK_COMMANDS
            and user is not None
            and self.desk.is_agent(user.id)
        )

    async def on_update(self, bot: Bot, update: Update) -> None:
        if update.callback_query is not None:
            await self._press(bot, update.update_id, update.callback_query)
        elif update.message is not None:
            await self._message(bot, update.update_id, update.message)

    async def _press(self, bot: Bot, update_id: int, query: CallbackQuery) -> None:
        parsed = parse_press(query.data or "")
        if parsed is None:
            await answer_press(query, None)
            return
        action, ref, choice = parsed
        chat_id = query.message.chat.id if query.message is not None else None
        agent = _agent(query.from_user)
        done = self.desk.act(agent, chat_id, action, ref, choice, dedupe_key(update_id))
        await answer_press(query, done.text or None)
        if done.choices and isinstance(query.message, Message):
            await self._reply(bot, query.message, done.text, done.choices)
        await self._finish(bot, done)

    async def _message(self, bot: Bot, update_id: int, message: Message) -> None:
        user = message.from_user
        if user is None or user.is_bot:
            return
        command = split_command(message.text)
        if message.chat.id != self.chat_id:
            # another group or a private chat: only an agent's desk command gets an answer
            if command is not None and command[0] in DESK_COMMANDS:
                refusal = self.desk.refusal(user.id, message.chat.id)
                if refusal is not None and self.desk.is_agent(user.id):
                    await self._reply(bot, message, refusal)
            return
        if command is not None:
            if command[0] in DESK_COMMANDS:
                await self._command(bot, update_id, message, *command)
            return
        if not self.desk.is_agent(user.id) or is_service_message(message):
            return  # the group's own talk is not for the customer
        case = self._case_of(message)
        if case is None:
            return
        done = self.desk.relay_to_customer(
            _agent(user),
            message.chat.id,
            case,
            _agent_message(message),
            dedupe_key(update_id),
        )
        await self._answer(bot, message, done)
        await self._finish(bot, done)

    async def _answer(self, bot: Bot, message: Message, done: Done) -> None:
        """Show the agent what became of what they wrote: a note gets ✍, a message sent to the
        customer a short confirmation; a refusal, a list to pick from or a history its text."""
        if done.marked == "note":
            try:
                await bot.set_message_reaction(message.chat.id, message.message_id, NOTE_REACTION)
            except TelegramError as exc:  # reactions off in the group: say it in words
                log.info("agent desk: no reaction in %s: %s", message.chat.id, exc)
                await self._reply(bot, message, done.text)
        elif done.text and (not done.ok or not done.announce):
            await self._reply(bot, message, done.text, done.choices)

    async def _command(
        self, bot: Bot, update_id: int, message: Message, name: str, rest: str
    ) -> None:
        user = message.from_user
        assert user is not None
        refusal = self.desk.refusal(user.id, message.chat.id)
        if refusal is not None:
            await self._reply(bot, message, refusal)
            return
        if name == "queue":
            text, buttons = self.desk.queue()
            thread = message.message_thread_id if message.is_topic_message else None
            await self._send(bot, text, buttons, thread, None)
            return
        if name == "duty":
            done = self.desk.duty(_agent(user), message.chat.id, rest)
            await self._reply(bot, message, done.text)
            return
        case = self._case_of(message)
        if case is None:
            await self._reply(bot, message, self.desk.texts.t("desk.error.no_case"))
            return
        action = COMMAND_ACTIONS[name]
        done = self.desk.act(
            _agent(user), message.chat.id, action, case_ref(case), rest, dedupe_key(update_id)
        )
        await self._answer(bot, message, done)
        await self._finish(bot, done)

    async def _finish(self, bot: Bot, done: Done) -> None:
        """After an action: tell the agents, deliver the customer's messages, post a due card."""
        for key in done.deliver:
            if key.channel == CHANNEL:
                await self.outbox.deliver(bot, key.user_id)
        if not done.ok or done.case is None:
            return
        if done.announce:
            await self._say(bot, done.case, done.text)
        if done.case.card_due:
            await self.post_card(bot, done.case)
        elif done.changed:
            await self.refresh_card(bot, done.case)

    async def refresh_card(self, bot: Bot, case: DeskCase) -> None:
        """Edit the posted card to what is true now (status, amount, holder, latest events); a
        card that no longer fits one message, or that is gone, is posted again instead."""
        card = self.desk.refreshed(case)
        if card is None or self.chat_id is None or card.case.chat_id != self.chat_id:
            return
        parts = render(Reply("desk", card.text, card.buttons))
        message_id = card.case.card_message_id
        assert message_id is not None
        try:
            if len(parts) != 1:
                raise BadRequest("the card no longer fits one message")
            markup = parts[0].reply_markup or {"inline_keyboard": []}
            await bot.edit_message_text(
                parts[0].text,
                chat_id=self.chat_id,
                message_id=message_id,
                reply_markup=InlineKeyboardMarkup.de_json(markup, bot),
            )
        except BadRequest as exc:
            if "not modified" in str(exc):
                return
            log.info("agent desk: card of case %s posted again: %s", card.case.case_id, exc)
            self.desk.card_again(card.case)
            await self.post_card(bot, card.case)

    def _case_of(self, message: Message) -> DeskCase | None:
        """The case of an agent-chat message: its topic, else the case message it replies to."""
        thread = message.message_thread_id if message.is_topic_message else None
        reply = message.reply_to_message
        return self.desk.case_at(
            message.chat.id, thread, reply.message_id if reply is not None else None
        )

    # -- what the customer's turns mean for the desk -----------------------------------------

    async def after_turn(self, bot: Bot, incoming: Incoming, result: TurnResult) -> None:
        """A case to open, messages to copy in, a customer who left or added material."""
        if result.duplicate:
            return
        key = conversation_key(incoming.chat_id)
        try:
            for effect in result.effects:
                match effect:
                    case HandoffRequested():
                        case = self.desk.handoff(effect, key)
                        await self.post_card(bot, case, incoming.name)
                    case RelayedToAgent():
                        await self._copy_in(bot, incoming, key)
                    case HandoffEnded():
                        left = self.desk.handoff_ended(key)
                        if left is not None and not left.card_due:
                            text = self.desk.texts.t("desk.note.customer_left")
                            await self._say(bot, left, text)
                    case TicketSupplemented() | TicketAppealed():
                        # what was added shows in the topic now (an appeal's card follows)
                        await self._supplemented(bot, effect.ticket_no)
        except Exception:
            # the customer's turn has committed and must not look failed; a card that did not
            # get posted stays due and the deadline job posts it
            log.exception("agent desk: update %s not passed on", incoming.update_id)

    async def _copy_in(self, bot: Bot, incoming: Incoming, key: ConversationKey) -> None:
        """The customer's messages, copied into their case's topic (or under its card). A topic
        deleted or closed meanwhile is replaced: the card goes into a new one, then the copies."""
        case = self.desk.relay_case(key, incoming.inbound.text or _file_word(self.desk, incoming))
        for attempt in (1, 2):
            if case is not None and case.card_due:
                await self.post_card(bot, case, incoming.name)
                case = self.desk.case(case)
            if case is None or self.chat_id is None or case.chat_id != self.chat_id:
                break
            if case.card_due:
                break
            try:
                await self._copy(bot, incoming, case)
                return
            except BadRequest as exc:
                if case.thread_id is None or attempt == 2:
                    raise
                log.warning("agent desk: topic of case %s is gone (%s)", case.case_id, exc)
                case = self.desk.topic_lost(case)
        log.warning("agent desk: no posted case for %s; message not copied", key)

    async def _copy(self, bot: Bot, incoming: Incoming, case: DeskCase) -> None:
        assert self.chat_id is not None
        thread, reply_to = _place(case)
        copied = []
        for message_id in incoming.message_ids:
            sent = await bot.copy_message(
                self.chat_id,
                incoming.chat_id,
                message_id,
                message_thread_id=thread,
                reply_parameters=_reply_to(reply_to),
            )
            copied.append(sent.message_id)
        if thread is None:
            self.desk.link(case, self.chat_id, copied)

    async def _supplemented(self, bot: Bot, ticket_no: str) -> None:
        info = self.desk.supplemented(ticket_no)
        if info is None or self.chat_id is None or info.case.chat_id != self.chat_id:
            return
        thread, reply_to = _place(info.case)
        posted = await self._send(bot, info.text, (), thread, reply_to)
        posted += await self._send_files(bot, info.evidence, thread, reply_to)
        if thread is None:
            self.desk.link(info.case, self.chat_id, posted)
        await self.refresh_card(bot, info.case)  # the ticket is back in review

    # -- cards -------------------------------------------------------------------------------

    async def post_card(self, bot: Bot, case: DeskCase, name: str = "") -> None:
        """Post the case's card (and re-send its evidence) in its topic, opening one if needed."""
        chat = self.chat_id
        if chat is None:
            return  # the case waits, card due, until an agent chat is configured
        async with self._cases.hold(stored(case)):
            card = self.desk.card(case, name)
            if card is None:
                return  # posted meanwhile
            case = card.case
            thread = case.thread_id if case.chat_id == chat else None
            try:
                thread, parts = await self._post(bot, card, thread)
            except BadRequest as exc:
                if thread is None:
                    raise
                # the topic was deleted in the group: the case gets a new one
                log.warning(
                    "agent desk: topic %s of case %s failed (%s)", thread, case.case_id, exc
                )
                thread, parts = await self._post(bot, card, None)
            # the card's last part carries the buttons: without topics, replies go under it
            card_id = parts[-1]
            reply_to = None if thread is not None else card_id
            files = await self._send_files(bot, card.evidence, thread, reply_to)
            if card.mention is not None:
                files += await self._mention(bot, card.mention, thread, reply_to)
            self.desk.card_posted(case, chat, thread, [card_id, *parts[:-1], *files])

    async def _mention(
        self, bot: Bot, holder: tuple[int, str], thread: int | None, reply_to: int | None
    ) -> list[int]:
        """Mention the agent holding the ticket, so that Telegram notifies them."""
        user_id, name = holder
        link = f'<a href="tg://user?id={user_id}">{html.escape(name)}</a>'
        text = html.escape(self.desk.texts.t("team.assigned", agent="\x00")).replace("\x00", link)
        assert self.chat_id is not None
        extra: dict[str, Any] = {"parse_mode": "HTML", "message_thread_id": thread}
        if reply_to is not None:
            extra["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        return [await send_text(bot, self.chat_id, text, None, **extra)]

    async def _post(self, bot: Bot, card: Card, thread: int | None) -> tuple[int | None, list[int]]:
        if thread is None and self._forum is not False:
            thread = await self._topic(bot, card.topic_name)
        return thread, await self._send(bot, card.text, card.buttons, thread, None)

    async def _topic(self, bot: Bot, name: str) -> int | None:
        assert self.chat_id is not None
        try:
            topic = await bot.create_forum_topic(self.chat_id, name)
        except BadRequest as exc:
            # "the chat is not a forum" (or no right to manage topics): cards go into the group
            # itself, and replies to them carry the conversation
            log.warning("agent desk: no forum topics in %s (%s)", self.chat_id, exc)
            self._forum = False
            return None
        self._forum = True
        return topic.message_thread_id

    async def post_due(self, bot: Bot) -> None:
        """Post every card still due (after a crash, a failure, or when a desk is configured)."""
        for case in self.desk.recover():
            try:
                await self.post_card(bot, case)
            except TelegramError as exc:
                log.warning("agent desk: card of case %s not posted: %s", case.case_id, exc)

    # -- deadlines ---------------------------------------------------------------------------

    async def deadline_job(self, context: Context) -> None:
        """Repeating job: overdue reviews and payouts; the store remembers what was done."""
        await self.check_deadlines(context.bot)

    async def check_deadlines(self, bot: Bot) -> None:
        report = self.desk.check_deadlines()
        for key in report.deliver:
            if key.channel == CHANNEL:
                await self.outbox.deliver(bot, key.user_id)
        await self.post_due(bot)

    # -- sending -----------------------------------------------------------------------------

    async def _say(self, bot: Bot, case: DeskCase, text: str) -> None:
        """A note where the case lives (its topic, or under its card)."""
        if self.chat_id is None or case.chat_id != self.chat_id:
            return
        thread, reply_to = _place(case)
        posted = await self._send(bot, text, (), thread, reply_to)
        if thread is None:
            self.desk.link(case, self.chat_id, posted)

    async def _send(
        self,
        bot: Bot,
        text: str,
        buttons: tuple[Button, ...],
        thread: int | None,
        reply_to: int | None,
    ) -> list[int]:
        assert self.chat_id is not None
        posted = []
        reply: dict[str, Any] = {}
        if reply_to is not None:  # as _reply_to() below, in Bot API JSON
            reply["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        for part in render(Reply("desk", text, buttons)):
            posted.append(
                await send_text(
                    bot,
                    self.chat_id,
                    part.text,
                    part.reply_markup,
                    message_thread_id=thread,
                    **reply,
                )
            )
        return posted

    async def _send_files(
        self,
        bot: Bot,
        evidence: tuple[tuple[Evidence, str], ...],
        thread: int | None,
        reply_to: int | None,
    ) -> list[int]:
        """Re-send each file; one that Telegram refuses never holds back the others, and the
        agents are told which one did not come through."""
        posted = []
        for item, caption in evidence:
            try:
                posted.append(await self._send_file(bot, item, caption, thread, reply_to))
            except TelegramError as exc:
                log.warning("agent desk: evidence %s not re-sent: %s", item.file_id, exc)
                text = self.desk.texts.t("desk.note.file_failed", caption=caption, reason=exc)
                posted += await self._send(bot, text, (), thread, reply_to)
        return posted

    async def _send_file(
        self, bot: Bot, evidence: Evidence, caption: str, thread: int | None, reply_to: int | None
    ) -> int:
        """Re-send a customer's file by its file_id (no download, no upload), the way it came:
        Telegram refuses a document's file_id as a photo, even when it is a screenshot."""
        assert self.chat_id is not None
        chat, file_id, reply = self.chat_id, evidence.file_id, _reply_to(reply_to)
        where: dict[str, Any] = {"message_thread_id": thread, "reply_parameters": reply}
        sent_as = evidence.sent_as or _SENT_AS_OF_KIND.get(evidence.kind, SentAs.DOCUMENT)
        if sent_as is SentAs.VIDEO_NOTE:  # a round video carries no caption: it follows
            sent = await bot.send_video_note(chat, file_id, **where)
            await self._send(bot, caption, (), thread, reply_to)
            return sent.message_id
        if sent_as is SentAs.PHOTO:
            sent = await bot.send_photo(chat, file_id, caption=caption, **where)
        elif sent_as is SentAs.VIDEO:
            sent = await bot.send_video(chat, file_id, caption=caption, **where)
        elif sent_as is SentAs.AUDIO:
            sent = await bot.send_audio(chat, file_id, caption=caption, **where)
        elif sent_as is SentAs.VOICE:
            sent = await bot.send_voice(chat, file_id, caption=caption, **where)
        else:
            sent = await bot.send_document(chat, file_id, caption=caption, **where)
        return sent.message_id

    async def _reply(
        self, bot: Bot, message: Message, text: str, buttons: tuple[Button, ...] = ()
    ) -> None:
        """Answer a message where it was written (a long text in several messages)."""
        thread = message.message_thread_id if message.is_topic_message else None
        try:
            for part in render(Reply("desk", text, buttons)):
                await send_text(
                    bot,
                    message.chat.id,
                    part.text,
                    part.reply_markup,
                    message_thread_id=thread,
                    reply_parameters={
                        "message_id": message.message_id,
                        "allow_sending_without_reply": True,
                    },
                )
        except TelegramError as exc:
            log.warning("agent desk: answer in %s not sent: %s", message.chat.id, exc)


# evidence stored before its way of sending was recorded (migration 0006)
_SENT_AS_OF_KIND = {EvidenceKind.PHOTO: SentAs.PHOTO, EvidenceKind.VIDEO: SentAs.VIDEO}


def _agent(user: User) -> Agent:
    return Agent(user.id, user.full_name)


def _place(case: DeskCase) -> tuple[int | None, int | None]:
    """(topic, message to reply to): a case lives in its topic, or under its card."""
    if case.thread_id is not None:
        return case.thread_id, None
    return None, case.card_message_id


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)


def _agent_message(message: Message) -> AgentMessage:
    media = (
        message.photo
        or message.document
        or message.video
        or message.audio
        or message.voice
        or message.animation
    )
    return AgentMessage(
        chat_id=message.chat.id,
        message_id=message.message_id,
        text=message.text,
        caption=message.caption,
        captionable=bool(media),
        forwarded=message.forward_origin is not None,
    )


def _file_word(desk: Desk, incoming: Incoming) -> str:
    """What the history says of a customer's message without text."""
    return desk.texts.t("team.relay.customer_file", count=len(incoming.message_ids))
