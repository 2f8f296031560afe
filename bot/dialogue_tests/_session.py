"""One script's bot: the App and python-telegram-bot Application over the fake transport, and
what a step does to it (raw updates in, jobs run, a restart). Labels, callback data, files, the
outbox and the repeating jobs are the production ones; only Telegram's servers are faked."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from telegram.ext import AIORateLimiter

from bot.app import DEMO_ORDERS
from bot.calendar import ChineseCalendarPackage, OnlyYears, WorkingCalendar
from bot.clock import FixedClock, to_local
from bot.config import Config, ConfigError, deep_merge, load_config
from bot.dialogue_tests._coverage import Coverage
from bot.dialogue_tests._expect import Observation, Sent
from bot.dialogue_tests._script import (
    Agent,
    AlbumPart,
    Contact,
    Document,
    Press,
    Script,
    ScriptError,
    Step,
    parse_advance,
)
from bot.domain import Order, Ticket
from bot.orders_import import (
    ImportFileError,
    ParseResult,
    format_errors,
    parse_json_text,
    parse_orders,
)
from bot.store import Identity
from bot.telegram import IncomingLimit, TelegramBot, conversation_key
from bot.testing import FakeTelegram, Harness, Shown, Updates, User, chat_of, labels

TOKEN = "123456:DIALOGUE-test"
# Every script runs with an agent desk configured, as production does; a script may override it.
RUNNER_CONFIG: dict[str, Any] = {
    "agent_desk": {"chat_id": -1001000000001, "agent_ids": [9001]},
}
AGENT_NAME = "客服小林"
OTHER_USER = User(2002, "李四")  # whose contact "someone else's contact" shares
# A person takes a few seconds per action: the per-customer flood limit (which reads a monotonic
# clock) sees that pace instead of the microseconds a script really takes.
PACE_SECONDS = 5.0
SETTLE_SECONDS = 5.0  # the bound for background work of one step (albums, desk tasks)
# what puts text in a chat: new messages, copies, and edits of a message's text (a desk card)
_MESSAGE_METHODS = (
    "send",
    "copyMessage",
    "forwardMessage",
    "editMessageText",
    "editMessageCaption",
)


class StepError(Exception):
    """The runner cannot do what the step says (no such button, no desk topic...)."""


def _describe(record: logging.LogRecord) -> str:
    text = f"{record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" ({type(error).__name__}: {error})"
    return text


# -- orders and config -----------------------------------------------------------------------


def script_orders(script: Script, path: Path) -> list[Order]:
    """The orders of `given`: the demo orders, a file, inline ones (in that order)."""
    given = script.given
    results: list[tuple[str, ParseResult]] = []
    try:
        if given.demo:
            results.append(("given.demo", parse_orders(DEMO_ORDERS)))
        if given.orders_file is not None:
            file = (path.parent / given.orders_file).resolve()
            results.append((f"given.orders_file ({file})", parse_orders(file)))
        if given.orders:
            text = json.dumps(given.orders, ensure_ascii=False, default=str)
            results.append(("given.orders", parse_json_text(text, source="given.orders")))
    except ImportFileError as exc:  # unreadable, not JSON/CSV: the message names the file
        raise ScriptError(path, [f"given: {exc}"]) from None
    problems = [f"{where}: {line}" for where, r in results for line in format_errors(r.errors)]
    if problems:
        raise ScriptError(path, problems)
    return [order for _, r in results for order in r.orders]


def script_config(script: Script, path: Path, base: Path, workdir: Path) -> Config:
    """config.yaml with the runner's and the script's overrides, and a store in `workdir`."""
    overrides = deep_merge(RUNNER_CONFIG, script.given.config)
    overrides = deep_merge(overrides, {"store": {"path": str(workdir / "bot.sqlite3")}})
    try:
        config = load_config(base, overrides)
    except ConfigError as exc:
        raise ScriptError(path, [f"given.config: {p}" for p in exc.problems]) from None
    if config.telegram.evidence_download_dir is not None:
        raise ScriptError(
            path, ["given.config: telegram.evidence_download_dir is not supported in dialogues"]
        )
    return config


def _calendar(script: Script, config: Config) -> WorkingCalendar | None:
    """The working days of a script that pins the years chinese-calendar covers (None: the
    installed package's)."""
    years = script.given.calendar_years
    if years is None:
        return None
    cal = config.calendar
    official = OnlyYears(ChineseCalendarPackage(), frozenset(years))
    return WorkingCalendar(cal.fallback_holidays, cal.fallback_workdays, official)


# -- one session: the bot as it runs, restartable --------------------------------------------


class Session(Harness):
    """One script's bot: the test harness's App + PTB Application over the fake transport;
    `restart` builds new ones on the same SQLite file, as a process restart would."""

    def __init__(self, script: Script, config: Config, coverage: Coverage) -> None:
        # the production limiter with Telegram's flood limits off: a dialogue test is not about
        # pacing sends, and the group limit (20 a minute) would stall desk scripts
        limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
        clock = FixedClock(script.given.now)
        super().__init__(
            config,
            clock,
            FakeTelegram(clock.now),
            rate_limiter=limiter,
            token=TOKEN,
            calendar=_calendar(script, config),
        )
        self.script = script
        self.coverage = coverage
        given = script.given
        self.customer = User(given.customer.id, given.customer.first_name, given.language)
        self._pace = 0.0
        self._albums = 0

    def prepare(self, bot: TelegramBot) -> None:
        self.coverage.attach(self.engine_app.engine)
        bot.adapter.limit = IncomingLimit(
            self.config.telegram.incoming_rate_limit, lambda: self._pace
        )

    # -- doing a step -----------------------------------------------------------------------

    async def customer_update(self, data: dict[str, Any]) -> None:
        self._pace += PACE_SECONDS
        await self.process(data)

    async def perform(self, step: Step) -> None:
        user, up = self.customer, self.updates
        if step.send is not None:
            await self.customer_update(typed(up, user, step.send))
        elif step.press is not None:
            await self.press_button(step.press)
        elif step.contact is not None:
            await self.customer_update(self._contact(step.contact))
        elif step.photo is not None:
            p = step.photo
            await self.customer_update(up.photo(user, p.name, p.size, caption=p.caption))
        elif step.document is not None:
            await self.customer_update(self._document(step.document))
        elif step.album is not None:
            await self.album(step.album)
        elif step.forward is not None:
            await self.forward(step)
        elif step.advance is not None:
            await self.advance(step.advance)
        elif step.agent is not None:
            await self.agent(step.agent)
        elif step.restart:
            await self.restart()
        await self.settle()

    def _contact(self, contact: Contact, **fields: Any) -> dict[str, Any]:
        """The contact card: whose Telegram account it is decides whether it links."""
        owner = contact.owner
        owners: dict[str, int | None] = {
            "self": self.customer.id,
            "other": OTHER_USER.id,
            "none": None,
        }
        owner_id = owners[owner] if isinstance(owner, str) else owner
        phone = contact.phone or self.script.given.customer.phone
        return self.updates.contact(
            self.customer, phone, owner=owner_id, first_name=contact.first_name, **fields
        )

    def _document(self, doc: Document, album: str | None = None) -> dict[str, Any]:
        file_id = doc.id or f"doc-{doc.name}"
        return self.updates.document(
            self.customer, file_id, doc.name, doc.mime, doc.size, caption=doc.caption, album=album
        )

    async def album(self, parts: list[AlbumPart]) -> None:
        self._albums += 1
        group = f"album-{self._albums}"
        for part in parts:
            if part.photo is not None:
                photo = part.photo
                data = self.updates.photo(
                    self.customer, photo.name, photo.size, caption=photo.caption, album=group
                )
            else:
                assert part.document is not None  # AlbumPart holds exactly one of them
                data = self._document(part.document, album=group)
            await self.customer_update(data)
        # the adapter waits album_wait_seconds after the last part; the script does not wait
        await self.flush_albums()

    async def forward(self, step: Step) -> None:
        assert step.forward is not None
        original = OTHER_USER
        if step.forward.text is not None:
            data = self.updates.forwarded(self.customer, original, text=step.forward.text)
        else:
            assert step.forward.contact is not None
            data = self._contact(step.forward.contact, forward_origin=self.updates.origin(original))
        await self.customer_update(data)

    async def press_button(self, press: Press) -> None:
        user, chat = self.customer, self.customer.id
        current = self.tg.with_buttons(chat)
        latest = current[0] if current else None
        if press.data is not None:  # forged: data the bot never sent, on the latest message
            await self.customer_update(on(self.updates, user, press.data, latest))
            return
        assert press.label is not None
        if press.stale:
            for shown in self.tg.every_message(chat):
                if shown is latest:
                    continue
                i = pick([label for label, _ in shown.sent_buttons], press.label)
                if i is not None:
                    data = shown.sent_buttons[i][1]
                    await self.customer_update(on(self.updates, user, data, shown))
                    return
            raise StepError(f"no earlier message showed a button 「{press.label}」")
        if latest is None:
            raise StepError(f"no button 「{press.label}」: no message shows buttons")
        inline = [label for label, _ in latest.buttons]
        i = pick(inline, press.label)
        if i is not None:
            await self.customer_update(on(self.updates, user, latest.buttons[i][1], latest))
            return
        keyboard = [label for label, _ in latest.reply_keyboard]
        j = pick(keyboard, press.label)
        if j is None:
            shown_labels = inline + keyboard
            raise StepError(
                f"no button 「{press.label}」 on the latest message with buttons; "
                f"it shows {shown_labels}"
            )
        label, wants_contact = latest.reply_keyboard[j]
        latest.reply_keyboard = []  # a one-time keyboard hides once used
        if wants_contact:  # Telegram sends the customer's own contact
            phone = self.script.given.customer.phone
            own = self.updates.contact(user, phone, first_name=user.first_name)
            await self.customer_update(own)
        else:  # a reply button sends its label as a message
            await self.customer_update(typed(self.updates, user, label))

    async def advance(self, text: str) -> None:
        """Move the clock, then run every repeating job once, as it would have fired."""
        amount = parse_advance(text)
        before = self.clock.now()
        if isinstance(amount, int):
            local = to_local(before)
            day = self.engine_app.calendar.add_working_days(local.date(), amount)
            self.clock.set(datetime.combine(day, local.timetz()))
        else:
            self.clock.advance(amount)
        self._pace += (self.clock.now() - before).total_seconds()
        await self.run_jobs()

    # -- the agent desk ---------------------------------------------------------------------

    def desk_chat(self) -> int:
        chat_id = self.config.agent_desk.chat_id
        if chat_id is None:
            raise StepError("no agent desk: agent_desk.chat_id is not configured")
        return chat_id

    def topic(self, which: str | None) -> int | None:
        if which == "general":
            return None
        topics = self.tg.topics
        if which is None:
            if not topics:
                raise StepError("the agent desk has no case topic yet (no createForumTopic)")
            return int(topics[-1]["message_thread_id"])
        for topic in reversed(topics):
            if which in str(topic["name"]):
                return int(topic["message_thread_id"])
        names = [t["name"] for t in topics]
        raise StepError(f"no desk topic named like {which!r}; topics: {names}")

    async def agent(self, agent: Agent) -> None:
        desk = self.desk_chat()
        ids = self.config.agent_desk.agent_ids
        if agent.as_ is None and not ids:
            raise StepError("no agent: agent_desk.agent_ids is empty (give `as:`)")
        actor = User(agent.as_ if agent.as_ is not None else ids[0], AGENT_NAME, "zh-hans")
        if agent.send is not None:
            thread = self.topic(agent.topic)
            await self.process(typed(self.updates, actor, agent.send, chat_of(desk), thread))
            return
        if agent.photo is not None:
            thread = self.topic(agent.topic)
            shot = self.updates.photo(
                actor, agent.photo, caption=agent.caption, chat=chat_of(desk), thread=thread
            )
            await self.process(shot)
            return
        if agent.forward is not None:
            thread = self.topic(agent.topic)
            forwarded = self.updates.message(
                actor,
                chat_of(desk),
                thread=thread,
                text=agent.forward,
                forward_origin=self.updates.origin(OTHER_USER),
            )
            await self.process(forwarded)
            return
        assert agent.press is not None
        thread = self.topic(agent.topic) if agent.topic is not None else None
        shown = self.tg.with_buttons(desk, thread)
        if not shown:
            raise StepError("no message with buttons in the agent desk")
        latest = shown[0]
        i = pick([label for label, _ in latest.buttons], agent.press)
        if i is None:
            raise StepError(
                f"no button 「{agent.press}」 on the latest desk message with buttons; "
                f"it shows {[label for label, _ in latest.buttons]}"
            )
        data = latest.buttons[i][1]
        await self.process(on(self.updates, actor, data, latest, chat_of(desk), latest.thread_id))

    # -- after a step -----------------------------------------------------------------------

    async def settle(self) -> None:
        """Let background work of the step finish, then run the outbox job once: messages the
        desk or a job wrote reach Telegram as they would within outbox_interval_seconds."""
        await self._drain()
        await self.run_jobs("outbox")
        await self._drain()

    @staticmethod
    async def _drain() -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=SETTLE_SECONDS)

    def observe(self, mark: int, logs: list[logging.LogRecord], errors: list[str]) -> Observation:
        seen = Observation()
        desk = self.config.agent_desk.chat_id
        for call in self.tg.calls[mark:]:
            if call.error is not None:  # Telegram refused it: the chat shows nothing of it
                seen.errors.append(f"Telegram refused {call.method}: {call.error}")
                continue
            params = call.params
            if call.method == "answerCallbackQuery":
                seen.answers.append(str(params.get("text") or ""))
                continue
            if not call.method.startswith(_MESSAGE_METHODS) or "chat_id" not in params:
                continue
            chat_id = int(params["chat_id"])
            thread = params.get("message_thread_id")
            sent = Sent(
                call.method,
                self.tg.text_of(call),
                labels(params.get("reply_markup")),
                int(thread) if thread is not None else None,
            )
            if chat_id == self.customer.id:
                seen.replies.append(sent)
            elif chat_id == desk:
                seen.desk.append(sent)
        for record in logs:
            (seen.errors if record.levelno >= logging.ERROR else seen.logs).append(
                _describe(record)
            )
        seen.errors.extend(errors)
        seen.state = self.customer_state() or "—"
        return seen

    # -- reading the store ------------------------------------------------------------------

    def customer_state(self) -> str | None:
        if self.app is None:
            return None
        conv = self.app.engine.conversation(conversation_key(self.customer.id))
        return f"{conv.flow}.{conv.state}" if conv is not None else None

    def tickets(self) -> list[Ticket]:
        """The customer's tickets, newest first (none while the account is not linked)."""
        with self.engine_app.store.unit_of_work() as uow:
            customer = uow.customer_by_identity(Identity("telegram", str(self.customer.id)))
            return uow.tickets_of_customer(customer.customer_id) if customer else []

    def evidence_count(self, ticket_no: str) -> int:
        with self.engine_app.store.unit_of_work() as uow:
            return len(uow.evidence_of(ticket_no))


def typed(
    up: Updates,
    user: User,
    text: str,
    chat: dict[str, Any] | None = None,
    thread: int | None = None,
) -> dict[str, Any]:
    """What a client sends for typed text: a "/…" text is a command (with its entity)."""
    if text.startswith("/"):
        return up.command(user, text, chat, thread=thread)
    return up.text(user, text, chat, thread=thread)


def on(
    up: Updates,
    user: User,
    data: str,
    shown: Shown | None,
    chat: dict[str, Any] | None = None,
    thread: int | None = None,
) -> dict[str, Any]:
    """A press of a button with `data` on the message `shown` (None: a made-up message 1)."""
    if shown is None:
        return up.press(user, data, chat=chat, thread=thread)
    return up.press(user, data, shown.message_id, chat=chat, thread=thread, text=shown.text)


def pick(options: list[str], wanted: str) -> int | None:
    """The index of the label `wanted`: exact, else the only label that contains it."""
    if wanted in options:
        return options.index(wanted)
    partial = [i for i, label in enumerate(options) if wanted in label]
    if len(partial) > 1:
        raise StepError(f"「{wanted}」 matches several buttons: {[options[i] for i in partial]}")
    return partial[0] if partial else None
