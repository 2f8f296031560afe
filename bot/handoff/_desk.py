"""The agent desk's domain service: cases, agent actions, relays both ways, the queue and the
deadlines. Transport-neutral: bot/telegram/_desk.py shows it in a Telegram supergroup.

Every agent action is one unit of work: the ticket's move and its audit event, the case, what the
action does to the customer's conversation (a SYSTEM turn of the engine) and the customer's
notification in the outbox commit together, or nothing does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from bot.calendar import next_opening
from bot.clock import to_local
from bot.dialogue import render
from bot.domain import Refusal, Ticket, allowed_triggers
from bot.engine import Button, HandoffRequested, Inbound, Kind, Reply
from bot.handoff._actions import ACTIONS, Acting
from bot.handoff._base import DeskBase
from bot.handoff._card import (
    PAYING,
    REVIEWING,
    Action,
    Card,
    build_card,
    captioned,
    holder,
    open_button,
    priority,
    queue,
)
from bot.handoff._model import Agent, AgentMessage, Deadlines, Done, Supplement
from bot.rules import is_overdue
from bot.store import (
    CaseEntry,
    Conversation,
    ConversationKey,
    DeskCase,
    OutboxMessage,
    UnitOfWork,
)
from bot.tickets import add_note, move


def stored(case: DeskCase) -> int:
    """The id of a case read from the store (a case not saved yet is a bug here)."""
    if case.case_id is None:
        raise ValueError("the case was never saved")
    return case.case_id


class Desk(DeskBase):
    """The agent desk's operations; every one is a unit of work of its own."""

    # -- the customer's side -----------------------------------------------------------------

    def handoff(self, asked: HandoffRequested, conversation: ConversationKey) -> DeskCase:
        """A customer's turn asked for a person (or appealed): open the case, or reopen it."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            return self._open(
                uow, now, asked.reason, asked.ticket_no, asked.customer_id, conversation
            )

    def relay_case(self, conversation: ConversationKey, said: str = "") -> DeskCase | None:
        """The case a customer's message goes to while a person has the chat; what they said
        goes into the case's history."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            conv = uow.conversation(conversation)
            if conv is None:
                return None
            case = self._case_of_handoff(uow, conv, now)
            if said:
                uow.add_case_entry(CaseEntry(stored(case), now, "customer", "from_customer", said))
            return case

    def topic_lost(self, case: DeskCase) -> DeskCase | None:
        """The case's topic is gone (deleted or closed): the next card opens a new one."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            current = uow.case(stored(case))
            if current is None:
                return None
            lost = dataclasses.replace(current, thread_id=None, card_due=True, updated_at=now)
            return uow.update_case(lost)

    def card_again(self, case: DeskCase) -> None:
        """The posted card cannot be edited: a fresh one is due."""
        with self.ctx.store.unit_of_work() as uow:
            current = uow.case(stored(case))
            if current is not None:
                uow.update_case(dataclasses.replace(current, card_due=True))

    def refreshed(self, case: DeskCase) -> Card | None:
        """The card of a posted case as it stands now, to edit in place (None: nothing posted)."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            current = uow.case(stored(case))
            if current is None or current.card_due or current.card_message_id is None:
                return None
            return build_card(self.texts, uow, current, now, "")

    def duty(self, agent: Agent, chat_id: int | None, arg: str) -> Done:
        """`/duty on|off`: whether new cases come to this agent (round-robin among those on)."""
        refused = self.refusal(agent.user_id, chat_id)
        if refused is not None:
            return Done(False, refused)
        wanted = arg.strip().lower()
        if wanted not in ("on", "off"):
            return Done(False, self.texts.t("team.error.duty_format"))
        with self.ctx.store.unit_of_work() as uow:
            uow.set_on_duty(agent.user_id, agent.name, wanted == "on")
            names = uow.agent_names()
            on = [names.get(a, f"#{a}") for a in uow.agents_on_duty()]
        text = self.texts.t(
            f"team.duty.{wanted}",
            agent=agent.name,
            on=", ".join(on) or self.texts.t("team.duty.nobody"),
        )
        return Done(True, text)

    def handoff_ended(self, conversation: ConversationKey) -> DeskCase | None:
        """The customer left the person (leave, cancel...): whoever joined is no longer there."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            case = uow.latest_case_of_conversation(conversation)
            if case is None:
                return None
            return uow.update_case(dataclasses.replace(case, joined_by=None, updated_at=now))

    def supplemented(self, ticket_no: str) -> Supplement | None:
        """What a customer just added to a ticket with a posted card (None: nothing to show)."""
        with self.ctx.store.unit_of_work() as uow:
            case = uow.case_of_ticket(ticket_no)
            if case is None or case.card_due:
                return None  # the card to come shows it all
            last = next(
                (e for e in reversed(uow.events_of(ticket_no)) if e.kind == "supplement"), None
            )
            if last is None:
                return None
            files = int(last.data.get("files", 0))
            note = str(last.data.get("note") or "")
            evidence = uow.evidence_of(ticket_no)[-files:] if files else []
        t = self.texts.t
        text = t(
            "desk.note.supplemented",
            files=files,
            note=t("desk.note.with_note", note=note) if note else "",
        )
        return Supplement(case, text, captioned(self.texts, evidence))

    # -- cases and cards ---------------------------------------------------------------------

    def case(self, case: DeskCase) -> DeskCase | None:
        """The case as stored now."""
        with self.ctx.store.unit_of_work() as uow:
            return uow.case(stored(case))

    def case_at(self, chat_id: int, thread_id: int | None, reply_to: int | None) -> DeskCase | None:
        """The case of an agent-chat message: by its topic, else by the message it replies to."""
        with self.ctx.store.unit_of_work() as uow:
            if thread_id is not None:
                return uow.case_in_thread(chat_id, thread_id)
            if reply_to is not None:
                return uow.case_of_message(chat_id, reply_to)
            return None

    def card(self, case: DeskCase, fallback_name: str = "") -> Card | None:
        """The card of a case whose card is due (None: posted already, or no such case)."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            current = uow.case(stored(case))
            if current is None or not current.card_due:
                return None
            return build_card(self.texts, uow, current, now, fallback_name)

    def card_posted(
        self, case: DeskCase, chat_id: int, thread_id: int | None, message_ids: list[int]
    ) -> None:
        """The card is up: remember where, so that later messages and handoffs find it."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            current = uow.case(stored(case))
            if current is None:
                return
            uow.update_case(
                dataclasses.replace(
                    current,
                    chat_id=chat_id,
                    thread_id=thread_id,
                    card_message_id=message_ids[0] if message_ids else current.card_message_id,
                    card_due=False,
                    updated_at=now,
                )
            )
            if thread_id is None:  # no topics: replies to these messages are the conversation
                for message_id in message_ids:
                    uow.link_message(chat_id, message_id, stored(case))

    def link(self, case: DeskCase, chat_id: int, message_ids: list[int]) -> None:
        """Messages posted for a case in a group without topics: replies to them reach it."""
        with self.ctx.store.unit_of_work() as uow:
            for message_id in message_ids:
                uow.link_message(chat_id, message_id, stored(case))

    def recover(self) -> list[DeskCase]:
        """What a crash may have left: chats with a person and no case; cards never posted."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            for flow, state in self._quiet:
                for conv in uow.conversations_in(flow, state):
                    self._case_of_handoff(uow, conv, now)
            return uow.cases_due()

    def queue(self) -> tuple[str, tuple[Button, ...]]:
        """The /queue answer: open tickets by priority and deadline, a button to open each."""
        with self.ctx.store.unit_of_work() as uow:
            return queue(self.texts, uow, self.ctx.clock.now())

    # -- the agents' side --------------------------------------------------------------------

    def act(
        self, agent: Agent, chat_id: int | None, action: Action, ref: str, arg: str, dedupe_key: str
    ) -> Done:
        """One agent action on the case `ref` (a ticket number or `c<case id>`)."""
        return self._as_agent(
            agent,
            chat_id,
            ref,
            action,
            dedupe_key,
            lambda acting: ACTIONS[action](acting, arg.strip()),
        )

    def relay_to_customer(
        self, agent: Agent, chat_id: int, case: DeskCase, message: AgentMessage, dedupe_key: str
    ) -> Done:
        """An agent wrote in a case: copy it to the customer, signed with the agent's name."""
        ref = f"c{stored(case)}"
        return self._as_agent(
            agent, chat_id, ref, None, dedupe_key, lambda acting: acting.relay(message)
        )

    def _as_agent(
        self,
        agent: Agent,
        chat_id: int | None,
        ref: str,
        action: Action | None,
        dedupe_key: str,
        do: Callable[[Acting], Done],
    ) -> Done:
        """Run what an agent did in one unit of work, once per update, if they may act here."""
        refused = self.refusal(agent.user_id, chat_id)
        if refused is not None:
            return Done(False, refused)
        now = self.ctx.clock.now()
        try:
            with self.ctx.store.unit_of_work() as uow:
                if not uow.mark_processed(dedupe_key, now):
                    return Done(False, duplicate=True)
                uow.remember_agent(agent.user_id, agent.name)
                return do(Acting(self, uow, agent, now, dedupe_key, ref, action))
        except Refusal as refusal:  # raised inside the unit of work: everything rolled back
            return Done(False, refusal.text(self.texts.t))

    def check_deadlines(self) -> Deadlines:
        """Announce each overdue review once in the agent chat; for each overdue payout open its
        case with priority and offer the customer a person. Persisted, so a restart repeats
        nothing: the ticket's events say what was done for which deadline."""
        now = self.ctx.clock.now()
        with self.ctx.store.unit_of_work() as uow:
            overdue = [t.ticket_no for t in uow.open_tickets() if is_overdue(t, now)]
        deliver: list[ConversationKey] = []
        cases: list[DeskCase] = []
        for ticket_no in overdue:
            with self.ctx.store.unit_of_work() as uow:  # one ticket per transaction
                ticket = uow.ticket(ticket_no)
                if ticket is None or not is_overdue(ticket, now):
                    continue
                if ticket.status in REVIEWING:
                    deliver.extend(self._announce_review(uow, ticket, now))
                elif ticket.status in PAYING:
                    case, keys = self._payout_overdue(uow, ticket, now)
                    deliver.extend(keys)
                    if case is not None:
                        cases.append(case)
        return Deadlines(tuple(dict.fromkeys(deliver)), tuple(cases))

    # -- inside a unit of work ---------------------------------------------------------------

    def _open(
        self,
        uow: UnitOfWork,
        now: datetime,
        reason: str,
        ticket_no: str | None,
        customer_id: int | None,
        conversation: ConversationKey | None,
    ) -> DeskCase:
        """The case of a ticket (or of a customer without one), opened or reopened with a card
        due; a chat where a person has it now routes its messages to this case."""
        ticket = uow.ticket(ticket_no) if ticket_no else None
        if ticket is not None:
            customer_id = ticket.customer_id
            case = uow.case_of_ticket(ticket.ticket_no)
        elif conversation is not None:
            case = uow.case_without_ticket(customer_id, conversation)
        else:
            raise ValueError("a case needs a ticket or a conversation")
        if conversation is None:
            conversation = case.conversation if case else None
        if conversation is None and customer_id is not None:
            latest = uow.conversations_of_customer(customer_id)
            conversation = latest[0].key if latest else None
        conv = uow.conversation(conversation) if conversation else None
        with_person = conv is not None and self.with_person(conv)
        if ticket is not None:
            self._assign(uow, ticket, now)  # a case new, or waiting unassigned since
        if case is None:
            return uow.add_case(
                DeskCase(
                    reason=reason,
                    opened_at=now,
                    updated_at=now,
                    ticket_no=ticket.ticket_no if ticket else None,
                    customer_id=customer_id,
                    conversation=conversation,
                    handoff_at=now if with_person else None,
                )
            )
        return uow.update_case(
            dataclasses.replace(
                case,
                reason=reason,
                customer_id=customer_id if customer_id is not None else case.customer_id,
                conversation=conversation,
                card_due=True,
                handoff_at=now if with_person else case.handoff_at,
                joined_by=None if with_person else case.joined_by,
                updated_at=now,
            )
        )

    def _assign(self, uow: UnitOfWork, ticket: Ticket, now: datetime) -> None:
        """A new case's unclaimed ticket goes to the agent on duty assigned longest ago (nobody
        on duty, or outside business hours: it waits in the queue). The card names the holder;
        the transport mentions them."""
        if ticket.assignee is not None or "claim" not in allowed_triggers(ticket.status):
            return
        hours = self.settings.hours
        if hours is not None and next_opening(
            to_local(now), hours.start, hours.end, self.ctx.calendar
        ):
            return  # outside business hours the case waits in the queue
        on_duty = uow.agents_on_duty()
        if not on_duty:
            return
        agent = on_duty[0]
        name = uow.agent_names().get(agent, f"#{agent}")
        move(uow, ticket, "claim", "system", now, {"assignee": agent}, agent=name, by="duty")
        uow.mark_assigned(agent, now)

    def _case_of_handoff(self, uow: UnitOfWork, conv: Conversation, now: datetime) -> DeskCase:
        """The case the chat's current handoff belongs to, opened if the handoff never got one."""
        case = uow.latest_case_of_conversation(conv.key)
        handoff = conv.data.get("handoff") or {}
        since = datetime.fromisoformat(handoff["since"]) if "since" in handoff else None
        if case is not None and (since is None or (case.handoff_at and case.handoff_at >= since)):
            return case
        return self._open(
            uow,
            now,
            str(handoff.get("reason") or "customer_asked"),
            conv.data.get("ticket_no"),
            conv.customer_id,
            conv.key,
        )

    def _announce_review(
        self, uow: UnitOfWork, ticket: Ticket, now: datetime
    ) -> list[ConversationKey]:
        chat = self.settings.chat_id
        if chat is None:
            return []  # announced once there is an agent chat to announce it in
        due = render.day(ticket.review_due)
        if any(
            e.kind == "overdue_announced" and e.data.get("review_due") == due
            for e in uow.events_of(ticket.ticket_no)
        ):
            return []
        add_note(uow, ticket, "system", now, "overdue_announced", review_due=due)
        t = self.texts
        text = t.t(
            "desk.overdue.review",
            ticket_no=ticket.ticket_no,
            priority=priority(t, ticket),
            review_due=due,
            holder=holder(t, uow.agent_names(), ticket),
        )
        reply = Reply("desk.overdue.review", text, (open_button(t, ticket.ticket_no),))
        desk = ConversationKey(self.channel, str(chat))
        uow.queue(OutboxMessage(desk.channel, desk.user_id, reply.to_payload(), created_at=now))
        return [desk]

    def _payout_overdue(
        self, uow: UnitOfWork, ticket: Ticket, now: datetime
    ) -> tuple[DeskCase | None, list[ConversationKey]]:
        due = render.day(ticket.payout_due)
        if any(
            e.kind == "payout_overdue" and e.data.get("payout_due") == due
            for e in uow.events_of(ticket.ticket_no)
        ):
            return None, []
        add_note(uow, ticket, "system", now, "payout_overdue", payout_due=due)
        case = self._open(uow, now, "payout_overdue", ticket.ticket_no, ticket.customer_id, None)
        conv = uow.conversation(case.conversation) if case.conversation else None
        if conv is None or conv.customer_id != ticket.customer_id:
            return case, []
        offer = Inbound(
            conv.key,
            Kind.SYSTEM,
            f"desk:payout_overdue:{ticket.ticket_no}:{due}",
            command="payout_overdue",
            text=ticket.ticket_no,
        )
        self.ctx.engine.handle_in(uow, offer, now)
        return case, [conv.key]
