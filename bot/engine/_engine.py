"""One turn: an inbound event in, the conversation moved by its flow machine, replies out.

Everything a turn writes (conversation state and data, tickets, evidence, events, the processed
event's dedupe key and the outgoing messages) commits in one unit of work.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from transitions import MachineError

from bot.calendar import WorkingCalendar
from bot.clock import Clock
from bot.config import Config
from bot.domain import Refusal
from bot.engine._effects import AgentOffered, RelayedToAgent, ReminderScheduled
from bot.engine._events import Button, Inbound, Kind, Reply, TurnResult
from bot.engine._flows import ROOT, FlowSet, StateDecl, split_target
from bot.engine._funnel import funnel_steps
from bot.engine._registry import Choice, Registry
from bot.engine._turn import Services, Turn, turn_locale
from bot.i18n import Catalog
from bot.store import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    OutboxMessage,
    Store,
    UnitOfWork,
)

log = logging.getLogger(__name__)

# /commands and the global trigger each one fires
COMMANDS: dict[str, str] = {
    "start": "start",
    "refund": "apply",
    "status": "status",
    "agent": "agent",
    "cancel": "cancel",
    "language": "language",
    "help": "help",
    "menu": "menu",
}
TRANSCRIPT_LENGTH = 20
INTENT_MAX_LENGTH = 20
_ATTEMPTS = 3


class Engine:
    def __init__(
        self,
        *,
        flows: FlowSet,
        registry: Registry,
        catalog: Catalog,
        store: Store,
        config: Config,
        calendar: WorkingCalendar,
        clock: Clock,
    ) -> None:
        self.flows = flows
        self.registry = registry
        self.catalog = catalog
        self.store = store
        self.config = config
        self.clock = clock
        self.services = Services(config, calendar, catalog)
        self._intents = {
            name: self._intent_pattern(f"intent.{name}") for name in ("agent", "cancel", "menu")
        }

    # -- public ------------------------------------------------------------------------------

    def handle(
        self, event: Inbound, also: Callable[[UnitOfWork], None] | None = None
    ) -> TurnResult:
        """Apply one inbound event; the same dedupe key a second time changes nothing. `also`
        runs in the turn's unit of work once its dedupe key is recorded (not for a duplicate):
        the caller's own reads and writes, committed with the turn or not at all; what it
        raises rolls the turn back and goes up (the adapter drops the album parts an album's
        turn handled, and turns an update back while an album of its chat waits)."""
        now = self.clock.now()
        for attempt in range(_ATTEMPTS):
            try:
                try:
                    with self.store.unit_of_work() as uow:
                        return self._handle(uow, event, now, None, also)
                except Refusal as refused:
                    # an action found it cannot go on (e.g. another process opened a ticket for
                    # the same order): its writes are rolled back; record the event and explain
                    with self.store.unit_of_work() as uow:
                        return self._handle(uow, event, now, refused, also)
            except ConcurrentUpdate:
                # another process moved this conversation meanwhile: replay on its new state
                log.info(
                    "conversation %s changed concurrently (attempt %d)", event.key, attempt + 1
                )
        raise ConcurrentUpdate(f"conversation {event.key} kept changing")

    def handle_in(self, uow: UnitOfWork, event: Inbound, now: datetime) -> TurnResult:
        """One turn inside the caller's unit of work, so that it commits or rolls back with the
        caller's own writes (an agent's action and what it does to the customer's chat)."""
        # no retry here: a ConcurrentUpdate or a Refusal is the caller's to roll back and report
        return self._handle(uow, event, now, None)

    def fire_reminders(self) -> list[TurnResult]:
        """Send the one reminder of every conversation left mid-flow past its delay."""
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            due = uow.conversations_due(now)
        results = []
        for conv in due:
            stamp = conv.remind_at.isoformat() if conv.remind_at else ""
            event = Inbound(
                conv.key,
                Kind.TIMER,
                dedupe_key=f"remind:{conv.key.channel}:{conv.key.user_id}:{stamp}",
            )
            results.append(self.handle(event))
        return results

    def conversation(self, key: ConversationKey) -> Conversation | None:
        with self.store.unit_of_work() as uow:
            return uow.conversation(key)

    # -- one turn ----------------------------------------------------------------------------

    def _handle(
        self,
        uow: UnitOfWork,
        event: Inbound,
        now: datetime,
        refused: Refusal | None,
        also: Callable[[UnitOfWork], None] | None = None,
    ) -> TurnResult:
        # one turn of a chat at a time across processes (a no-op on SQLite's single writer), so
        # that two workers given the same chat's updates keep its order and its dedupe key
        uow.lock_chat(event.key.channel, event.key.user_id)
        new, stored = uow.mark_processed_and_read(event.dedupe_key, now, event.key)
        if not new:
            return TurnResult(duplicate=True)
        if also is not None:
            also(uow)
        conv = stored or self._new_conversation(uow, event)
        turn = Turn(
            state=conv.state, conv=conv, uow=uow, event=event, now=now, services=self.services
        )
        result = TurnResult(at=now)
        before = (conv.flow, conv.state)
        if refused is not None:
            turn.error = (refused.key, refused.params)
            self._render(turn, result, reprompt=True)
        else:
            self._dispatch(turn, result)
        result.flow, result.state = conv.flow, conv.state
        result.effects.extend(turn.effects)
        for step, detail in funnel_steps(before, (conv.flow, conv.state), event, turn.effects):
            uow.record_funnel(event.key, step, now, detail)
        decl = self.flows.state(conv.flow, conv.state)
        if event.kind is not Kind.TIMER:
            conv.remind_at = None
            if decl.remind:
                delay = timedelta(minutes=self.config.dialogue.reminder_after_minutes)
                conv.remind_at = now + delay
                result.effects.append(ReminderScheduled(conv.remind_at))
        conv.updated_at = now
        uow.save_conversation(conv)
        for reply in result.replies:
            uow.queue(
                OutboxMessage(
                    event.key.channel, event.key.user_id, reply.to_payload(), created_at=now
                )
            )
        return result

    def _new_conversation(self, uow: UnitOfWork, event: Inbound) -> Conversation:
        flow, state = ROOT
        sender = event.sender
        customer = uow.customer_by_identity(sender) if sender is not None else None
        conv = Conversation(key=event.key, flow=flow, state=state, data={})
        if customer is not None:
            conv.customer_id = customer.customer_id
            conv.locale = customer.locale
            conv.flow, conv.state = "menu", "main"
        if conv.locale is None:
            conv.data["client_locale"] = self.catalog.locale_for(event.language_code)
        return conv

    def _dispatch(self, turn: Turn, result: TurnResult) -> None:
        conv, event = turn.conv, turn.event
        decl = self.flows.state(conv.flow, conv.state)
        if event.kind is Kind.TIMER:
            if conv.remind_at is not None and decl.remind and not decl.quiet:
                turn.say("common.reminder")
                self._render(turn, result)
            conv.remind_at = None
            return
        if event.kind is not Kind.SYSTEM:  # the desk's own events are not the customer's words
            self._remember(conv, "customer", self._describe(event, conv))
        if decl.quiet and event.kind in (Kind.TEXT, Kind.FILE, Kind.CONTACT):
            # a person has the chat: the bot stays quiet, the desk relays (see bot/handoff)
            turn.effect(RelayedToAgent(event.text, tuple(f.file_id for f in event.files)))
            return
        resolved = self._resolve(turn, decl, result)
        if resolved is None:
            return
        trigger, arg = resolved
        self._fire(turn, trigger, arg, result)

    def _resolve(
        self, turn: Turn, decl: StateDecl, result: TurnResult
    ) -> tuple[str, str | None] | None:
        """Which trigger the event fires, or None after answering it (stale button, noise)."""
        event, conv = turn.event, turn.conv
        if event.kind is Kind.BUTTON:
            item = self._menu_item(conv, event.token)
            if item is None:
                result.button_answer = self.catalog.text(
                    turn_locale(conv, self.catalog), "button.stale"
                )
                return None
            return item[0], item[1]
        if event.kind is Kind.SYSTEM:
            return event.command, event.text or None
        if event.kind is Kind.COMMAND:
            trigger = COMMANDS.get(event.command)
            if trigger is None:
                return self._misunderstood(turn, result)
            return trigger, None
        if event.kind is Kind.CONTACT:
            return (
                (decl.on_contact, None)
                if decl.on_contact
                else self._misunderstood(turn, result, "common.no_contact_here")
            )
        if event.kind is Kind.FILE:
            return (
                (decl.on_file, None)
                if decl.on_file
                else self._misunderstood(turn, result, "common.no_file_here")
            )
        text = event.text.strip()
        for item in conv.data.get("menu", {}).get("items", []):
            if text and text.casefold() == item[2].casefold():
                return item[0], item[1]
        # "转人工" / "cancel" work everywhere, but a long free text is an answer, not a command
        if len(text) <= INTENT_MAX_LENGTH:
            for name, pattern in self._intents.items():
                if pattern is not None and pattern.search(text):
                    return name, None
        if decl.on_text:
            return decl.on_text, text
        return self._misunderstood(turn, result)

    def _fire(self, turn: Turn, trigger: str, arg: str | None, result: TurnResult) -> None:
        conv = turn.conv
        flow = self.flows.flows[conv.flow]
        source = conv.state
        turn.arg = arg
        turn.state = source
        event = flow.machine.events.get(trigger)
        try:
            moved = event is not None and bool(event.trigger(turn))
        except MachineError:
            moved = False
        if not moved:
            if turn.error is None:
                self._misunderstood(turn, result)
            elif turn.event.kind is Kind.TEXT:
                # typed text the step refuses ("all of it" for an amount) is misunderstood too
                self._misunderstood(turn, result, *turn.error)
            else:
                self._render(turn, result, reprompt=True)
            return
        new_flow, new_state = split_target(turn.state, conv.flow)
        result.fired = (
            conv.flow,
            source,
            trigger,
            new_state if new_flow == conv.flow else turn.state,
        )
        conv.flow, conv.state = new_flow, new_state
        conv.data["misses"] = 0
        self._render(turn, result)

    def _misunderstood(
        self,
        turn: Turn,
        result: TurnResult,
        key: str = "common.misunderstood",
        params: dict[str, Any] | None = None,
    ) -> tuple[str, str | None] | None:
        """Re-prompt after input that is no answer; returns None: nothing to fire."""
        misses = int(turn.data.get("misses", 0)) + 1
        turn.data["misses"] = misses
        turn.error = (key, params or {})
        if misses >= self.config.dialogue.misunderstood_before_agent:
            turn.data["misses"] = 0
            turn.say("common.offer_agent")
            turn.effect(AgentOffered(misses=misses))
        self._render(turn, result, reprompt=True)
        return None

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, turn: Turn, result: TurnResult, reprompt: bool = False) -> None:
        conv = turn.conv
        locale = turn_locale(conv, self.catalog)
        decl = self.flows.state(conv.flow, conv.state)
        text = self.catalog.text
        messages: list[tuple[str, str]] = []
        if turn.error is not None:
            error_key, error_params = turn.error
            messages.append((error_key, text(locale, error_key, error_params)))
        for note_key, note_params in turn.notes:
            messages.append((note_key, text(locale, note_key, note_params)))
        view = self.registry.views[decl.view](turn) if decl.view else None
        params: dict[str, Any] = dict(view.params) if view else {}
        for before_key, before_params in view.before if view else ():
            messages.append((before_key, text(locale, before_key, before_params)))
        choices: list[Choice] = list(view.choices) if view else []
        for b in decl.buttons:
            if b.request_contact:
                continue
            if b.when is None or self.registry.conditions[b.when](turn):
                choices.append(Choice(b.trigger, b.arg, label_key=b.label))
        offered = any(isinstance(e, AgentOffered) for e in turn.effects)
        for b in self.flows.globals.buttons:
            # the offer of an agent names the agent button: show it where the row is left out
            if decl.global_buttons or (offered and b.trigger == "agent"):
                choices.append(Choice(b.trigger, b.arg, label_key=b.label))
        buttons = self._menu(conv, choices, locale)
        contact = [b for b in decl.buttons if b.request_contact]
        if contact:
            buttons = (Button(text(locale, contact[0].label), request_contact=True), *buttons)
        if decl.prompt:
            prompt_key = decl.prompt
            messages.append((prompt_key, text(locale, prompt_key, params)))
        for i, (key, body) in enumerate(messages):
            last = i == len(messages) - 1
            result.replies.append(Reply(key, body, buttons if last else (), params if last else {}))
        self._remember_replies(conv, messages)

    def _menu(self, conv: Conversation, choices: list[Choice], locale: str) -> tuple[Button, ...]:
        """Give each button an opaque token valid only for this conversation's current prompt."""
        nonce = secrets.token_hex(3)
        items = []
        buttons = []
        for i, c in enumerate(choices):
            label = (
                c.label
                if c.label is not None
                else self.catalog.text(locale, c.label_key or "", c.label_params)
            )
            items.append([c.trigger, c.arg, label])
            buttons.append(Button(label, f"{nonce}.{i}"))
        conv.data["menu"] = {"nonce": nonce, "items": items}
        return tuple(buttons)

    @staticmethod
    def _menu_item(conv: Conversation, token: str) -> tuple[str, str | None, str] | None:
        """(trigger, arg, label) of a button of the latest prompt, or None: stale or forged."""
        menu = conv.data.get("menu") or {}
        nonce, _, index = token.partition(".")
        # the engine writes ASCII indexes; "٣" is a digit to isdigit() but no token of ours
        if not (index.isascii() and index.isdigit()) or nonce != menu.get("nonce"):
            return None
        items = menu.get("items", [])
        i = int(index)
        if i >= len(items):
            return None
        return items[i][0], items[i][1], items[i][2]

    # -- transcript (shown to the agent on handoff) ------------------------------------------

    @staticmethod
    def _describe(event: Inbound, conv: Conversation) -> str:
        """The transcript line of an event: a press shows the label the customer saw."""
        if event.kind is Kind.BUTTON:
            item = Engine._menu_item(conv, event.token)
            return f"[{item[2]}]" if item is not None else "[button]"
        if event.kind is Kind.TEXT:
            return event.text
        if event.kind is Kind.COMMAND:
            return f"/{event.command}"
        if event.kind is Kind.FILE:
            return " ".join(
                f"[{f.kind.value}:{f.file_name or f.file_unique_id}]" for f in event.files
            )
        if event.kind is Kind.CONTACT:
            return "[contact]"
        return f"[{event.kind.value}]"

    def _remember(self, conv: Conversation, who: str, text: str) -> None:
        transcript = conv.data.setdefault("transcript", [])
        transcript.append([who, text[:500]])
        del transcript[:-TRANSCRIPT_LENGTH]

    def _remember_replies(self, conv: Conversation, messages: list[tuple[str, str]]) -> None:
        for _, body in messages:
            self._remember(conv, "bot", body)

    def _intent_pattern(self, key: str) -> re.Pattern[str] | None:
        words = [
            w.strip()
            for loc in self.catalog.locales
            if self.catalog.has(key)
            for w in self.catalog.text(loc, key).split("|")
            if w.strip()
        ]
        if not words:
            return None
        # Latin words match whole words only ("personal" is not "person"); Chinese has no spaces
        alternatives = [
            rf"(?<![A-Za-z]){re.escape(w)}(?![A-Za-z])" if w.isascii() else re.escape(w)
            for w in words
        ]
        return re.compile("|".join(alternatives), re.IGNORECASE)
