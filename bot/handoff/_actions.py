"""The agent actions, one unit of work each: claim, approve, reject, ask for more, mark refunded,
return the chat to the bot, open the card; and an agent's message relayed to the customer."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot import tickets
from bot.dialogue import render
from bot.domain import CompensationKind, Refusal, Ticket, TicketStatus, allowed_triggers
from bot.engine import Button, Copy, Inbound, Kind, Reply, turn_locale
from bot.handoff._base import DeskBase
from bot.handoff._card import REVIEWING, TRIGGERS, Action, case_ref, press_token
from bot.handoff._model import Agent, AgentMessage, Done
from bot.money import parse_yuan
from bot.rules import can_appeal, check_approved_amount, coupon_back
from bot.store import (
    Block,
    CaseEntry,
    Conversation,
    ConversationKey,
    DeskCase,
    OutboxMessage,
    UnitOfWork,
)
from bot.tickets import add_note, approve, mark_refunded, move

# An agent's message reaches the customer only when it starts with one of these (then stripped);
# everything else written in a case is a note among the agents (README, "The agent desk").
ADDRESS_PREFIXES = (">", "＞")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def addressed(text: str | None) -> str | None:
    """What of an agent's text is for the customer (it starts with `>`), None: a note."""
    stripped = (text or "").lstrip()
    for prefix in ADDRESS_PREFIXES:
        if stripped.startswith(prefix):
            return stripped.removeprefix(prefix).strip()
    return None


def written_in(text: str) -> str | None:
    """The language a text is written in, by its script: Chinese characters, else Latin letters."""
    if _CJK.search(text):
        return "zh-CN"
    if _LATIN.search(text):
        return "en"
    return None


class Acting:
    """One agent action inside its unit of work: the case, its ticket, the customer's chat."""

    def __init__(
        self,
        desk: DeskBase,
        uow: UnitOfWork,
        agent: Agent,
        now: datetime,
        dedupe_key: str,
        ref: str,
        action: Action | None,
    ) -> None:
        self.desk, self.uow, self.agent, self.now = desk, uow, agent, now
        self.dedupe_key = dedupe_key
        self.deliver: list[ConversationKey] = []
        self.case, self.ticket = self._resolve(ref, action)

    def t(self, key: str, **params: Any) -> str:
        return self.desk.texts.t(key, **params)

    def _resolve(self, ref: str, action: Action | None) -> tuple[DeskCase, Ticket | None]:
        uow = self.uow
        if ref.startswith("c") and ref[1:].isdigit():
            case = uow.case(int(ref[1:]))
            ticket = uow.ticket(case.ticket_no) if case and case.ticket_no else None
        else:
            ticket = uow.ticket(ref)
            case = uow.case_of_ticket(ref) if ticket else None
            if ticket is not None and case is None:  # from the queue: no card yet
                case = uow.add_case(
                    DeskCase(
                        reason="queue",
                        opened_at=self.now,
                        updated_at=self.now,
                        ticket_no=ticket.ticket_no,
                        customer_id=ticket.customer_id,
                        card_due=action is Action.OPEN,
                    )
                )
        if case is None:
            raise Refusal("desk.error.unknown", ref=ref)
        return case, ticket

    def movable(self, action: Action) -> Ticket:
        """The case's ticket, if its status still allows the action (a stale button does not)."""
        ticket = self.ticket
        if ticket is None:
            raise Refusal("desk.error.no_ticket")
        if TRIGGERS[action] not in allowed_triggers(ticket.status):
            if action is Action.REFUNDED and ticket.status is TicketStatus.REFUNDED:
                raise Refusal("desk.error.already_refunded", ticket_no=ticket.ticket_no)
            status = render.status_name(self.desk.texts, ticket)
            raise Refusal("desk.error.stale", ticket_no=ticket.ticket_no, status=status)
        return ticket

    def conversation(self) -> Conversation | None:
        """The customer's chat: the case's, else the customer's most recent (remembered)."""
        if self.case.conversation is not None:
            return self.uow.conversation(self.case.conversation)
        if self.case.customer_id is None:
            return None
        latest = self.uow.conversations_of_customer(self.case.customer_id)
        if not latest:
            return None
        self.case = dataclasses.replace(self.case, conversation=latest[0].key)
        return latest[0]

    def tell(self, conv: Conversation, key: str, **params: Any) -> None:
        """A notification to the customer, in their language, through the outbox."""
        text = self.desk.ctx.catalog.text(turn_locale(conv, self.desk.ctx.catalog), key, params)
        self._enqueue(conv, Reply(key, text).to_payload())

    def _enqueue(self, conv: Conversation, payload: dict[str, Any]) -> None:
        self.uow.queue(
            OutboxMessage(conv.key.channel, conv.key.user_id, payload, created_at=self.now)
        )
        self.deliver.append(conv.key)

    def system(self, conv: Conversation, trigger: str, arg: str) -> None:
        """Move the customer's conversation by a SYSTEM event, in this unit of work."""
        event = Inbound(
            conv.key, Kind.SYSTEM, f"{self.dedupe_key}:{trigger}", command=trigger, text=arg
        )
        self.desk.ctx.engine.handle_in(self.uow, event, self.now)
        self.deliver.append(conv.key)

    def join(self, conv: Conversation) -> None:
        """The agent talks to the customer: the customer is told once, and the bot goes quiet."""
        if not self.desk.with_person(conv):
            self.system(conv, "agent_joined", self.agent.name)
        elif self.case.joined_by is None:
            self.tell(conv, "handoff.joined", agent=self.agent.name)
        self.case = dataclasses.replace(
            self.case, joined_by=self.agent.user_id, handoff_at=self.now
        )

    def done(self, key: str | None, /, announce: bool = True, **params: Any) -> Done:
        """Save the case; `key` is what the agents are told (None: nothing)."""
        case = self.uow.update_case(dataclasses.replace(self.case, updated_at=self.now))
        text = self.t(key, agent=self.agent.name, **params) if key else ""
        return Done(True, text, case, tuple(dict.fromkeys(self.deliver)), announce and bool(text))

    # -- the actions -------------------------------------------------------------------------

    def claim(self, arg: str) -> Done:
        agent = self.agent
        held = self.ticket
        if (
            held is not None
            and held.status in REVIEWING
            and held.assignee not in (None, agent.user_id)
        ):
            # /claim overrides whoever holds it (e.g. the round-robin's pick)
            self.uow.update_ticket(held.model_copy(update={"assignee": agent.user_id}))
            add_note(self.uow, held, agent.actor, self.now, "reassigned", agent=agent.name)
            return self.done("desk.done.claim", ticket_no=held.ticket_no)
        ticket = self.movable(Action.CLAIM)
        move(
            self.uow,
            ticket,
            "claim",
            agent.actor,
            self.now,
            {"assignee": agent.user_id},
            agent=agent.name,
        )
        conv = self.conversation()
        if conv is not None:
            self.tell(conv, "handoff.claimed", agent=agent.name, ticket_no=ticket.ticket_no)
            if self.desk.with_person(conv):  # the claim told them a person is there
                self.case = dataclasses.replace(self.case, joined_by=agent.user_id)
        return self.done("desk.done.claim", ticket_no=ticket.ticket_no)

    def approve(self, arg: str) -> Done:
        ticket = self.movable(Action.APPROVE)
        try:
            amount = parse_yuan(arg) if arg else ticket.requested_fen
        except ValueError:
            raise Refusal("desk.error.amount_format") from None
        order = self.uow.order(ticket.order_id)
        if order is None:
            raise Refusal("desk.error.unknown", ref=ticket.order_id)
        refunded = self.uow.refunded_fen(order.order_id)
        problem = check_approved_amount(order, refunded, amount)
        if problem is not None:
            cap = max(order.cash_paid_fen - refunded, 0)
            raise Refusal(problem).plus("desk.error.cap", cap_fen=cap)
        ctx = self.desk.ctx
        approved = approve(
            self.uow, ctx.config, ctx.calendar, ticket, order, amount, self.agent.actor, self.now
        )
        due = render.day(approved.payout_due)
        conv = self.conversation()
        if conv is not None:
            self.tell(
                conv,
                "handoff.approved",
                ticket_no=ticket.ticket_no,
                amount_fen=amount,
                payout_due=due,
            )
            coupon = coupon_back(order, refunded, amount)
            if coupon:
                self.tell(conv, "handoff.coupon_returned", coupon_fen=coupon)
            elif (
                order.coupon_refundable
                and order.coupon_fen
                and coupon_back(order, refunded, ticket.requested_fen)
            ):  # the confirm screen promised it with the amount asked for
                self.tell(conv, "handoff.coupon_not_yet", coupon_fen=order.coupon_fen)
        return self.done(
            "desk.done.approve", ticket_no=ticket.ticket_no, amount_fen=amount, payout_due=due
        )

    def reject(self, arg: str) -> Done:
        ticket = self.movable(Action.REJECT)
        if not arg:
            names = self.desk.settings.reject_reasons
            return self.choices(Action.REJECT, names, "reject", "team.pick.reject")
        conv = self.conversation()
        ours, theirs, warning = self.standard(conv, "reject", arg)
        # the customer reads the reason in the status screens: in their language
        rejected = move(self.uow, ticket, "reject", self.agent.actor, self.now, reason=theirs)
        if conv is not None:
            policy = self.desk.ctx.config.policy
            final = not can_appeal(rejected, policy)
            key = "handoff.rejected_final" if final else "handoff.rejected_can_appeal"
            self.tell(conv, key, ticket_no=ticket.ticket_no, reason=theirs)
            if final:
                self.ask_rating(conv, rejected)
        done = self.done("desk.done.reject", ticket_no=ticket.ticket_no, reason=ours)
        return dataclasses.replace(done, text=done.text + warning)

    def need(self, arg: str) -> Done:
        ticket = self.movable(Action.NEED)
        if not arg:
            names = self.desk.settings.need_requests
            return self.choices(Action.NEED, names, "need", "team.pick.need")
        conv = self.conversation()
        ours, theirs, warning = self.standard(conv, "need", arg)
        move(self.uow, ticket, "request_info", self.agent.actor, self.now, request=theirs)
        done = self._need(ticket, conv, theirs, ours)
        return dataclasses.replace(done, text=done.text + warning)

    def _need(self, ticket: Ticket, conv: Conversation | None, arg: str, ours: str) -> Done:
        if conv is not None and conv.customer_id == ticket.customer_id:
            # the customer lands in the upload step with the request shown; a person's chat ends
            self.system(conv, "supplement_requested", ticket.ticket_no)
            self.case = dataclasses.replace(self.case, joined_by=None)
        elif conv is not None:  # a chat not (or no longer) linked to the ticket's customer
            self.tell(conv, "handoff.need_more", ticket_no=ticket.ticket_no, request=arg)
        return self.done("desk.done.need", ticket_no=ticket.ticket_no, request=ours)

    def refunded(self, arg: str) -> Done:
        ticket = self.movable(Action.REFUNDED)
        _, entry = mark_refunded(self.uow, ticket, self.agent.actor, self.now)
        conv = self.conversation()
        if conv is not None:
            self.tell(
                conv, "handoff.refunded", ticket_no=ticket.ticket_no, amount_fen=entry.amount_fen
            )
            self.ask_rating(conv, ticket)
        return self.done(
            "desk.done.refunded",
            ticket_no=ticket.ticket_no,
            amount_fen=entry.amount_fen,
            idempotency_key=entry.idempotency_key,
        )

    def ask_rating(self, conv: Conversation, ticket: Ticket) -> None:
        """The ticket ended: ask its customer once for a rating (a chat a person has is not
        interrupted: the rating is asked when the agent returns it to the bot)."""
        if conv.customer_id != ticket.customer_id or self.desk.with_person(conv):
            return
        if any(e.kind == "rating_asked" for e in self.uow.events_of(ticket.ticket_no)):
            return
        add_note(self.uow, ticket, "system", self.now, "rating_asked")
        self.system(conv, "rating_requested", ticket.ticket_no)

    def give_back(self, arg: str) -> Done:
        conv = self.conversation()
        if conv is None or not self.desk.with_person(conv):
            raise Refusal("desk.error.not_with_agent")
        self.system(conv, "returned", "")
        self.case = dataclasses.replace(self.case, joined_by=None)
        if self.ticket is not None:
            add_note(
                self.uow,
                self.ticket,
                self.agent.actor,
                self.now,
                "handoff_returned",
                agent=self.agent.name,
            )
            back = self.uow.conversation(conv.key)
            if back is not None and self.ended(self.ticket):
                self.ask_rating(back, self.ticket)  # it ended while the person had the chat
        return self.done("desk.done.return")

    def ended(self, ticket: Ticket) -> bool:
        """Refunded, or rejected with no appeal left: the ticket's story is over."""
        if ticket.status is TicketStatus.REFUNDED:
            return True
        policy = self.desk.ctx.config.policy
        return ticket.status is TicketStatus.REJECTED and not can_appeal(ticket, policy)

    def open(self, arg: str) -> Done:
        self.conversation()  # a case opened from the queue learns where its customer is
        self.case = dataclasses.replace(self.case, card_due=True)
        return self.done("desk.done.open", announce=False)

    def log(self, kind: str, text: str, actor: str | None = None) -> None:
        """A line of the case's history that is no ticket event (a note, a message)."""
        case_id = self.case.case_id
        assert case_id is not None
        entry = CaseEntry(case_id, self.now, actor or self.agent.actor, kind, text)
        self.uow.add_case_entry(entry)

    def note(self, arg: str) -> Done:
        """`/note text`, or anything an agent writes in a case without addressing the customer:
        kept on the case for the agents, never sent."""
        if not arg:
            raise Refusal("desk.error.note_required")
        self.log("note", arg)
        # the card shows notes from its next edit on: editing it for each note would spend the
        # group's message budget (Telegram: about 20 a minute) on chatter
        return dataclasses.replace(self.marked("note", "team.relay.note"), changed=False)

    def marked(self, what: str, key: str, **params: Any) -> Done:
        done = self.done(None)
        text = self.t(key, **params)
        return dataclasses.replace(done, text=text, marked=what)

    def language_warning(self, conv: Conversation, text: str) -> str:
        """A warning for the agent when the customer reads another language than the text's."""
        locale = turn_locale(conv, self.desk.ctx.catalog)
        wrote = written_in(text)
        if wrote is None or wrote == locale:
            return ""
        language = self.t(f"team.language.{locale}")
        return "\n" + self.t("team.language_warning", language=language)

    def relay(self, message: AgentMessage) -> Done:
        """An agent's message in a case: to the customer when addressed (`>` first), else a note.
        A forwarded message, a sticker or a file without such a caption is always a note."""
        own = message.text if message.text is not None else message.caption
        if message.forwarded:
            said = None
        elif message.text is not None:
            said = addressed(message.text) or None  # `>` alone says nothing: a note
        elif message.captionable:
            said = addressed(message.caption)
        else:
            said = None
        if said is None:
            return self.note(own or self.t("team.relay.file"))
        conv = self.conversation()
        if conv is None:
            raise Refusal("desk.error.no_conversation")
        self.join(conv)
        catalog = self.desk.ctx.catalog
        signature = catalog.text(
            turn_locale(conv, catalog), "handoff.signature", {"agent": self.agent.name}
        )
        if message.text is not None:
            text = f"{said}\n\n{signature}"
            self._enqueue(conv, Reply("handoff.signature", text).to_payload())
        else:
            copy = Copy(message.chat_id, message.message_id, said or None, message.captionable)
            self._enqueue(conv, Reply("handoff.signature", signature, copy=copy).to_payload())
        self.log("to_customer", said or self.t("team.relay.file"))
        return self.marked(
            "sent", "team.relay.sent", warning=self.language_warning(conv, said) if said else ""
        )

    # -- standard replies ----------------------------------------------------------------------

    def choices(self, action: Action, names: tuple[str, ...], kind: str, prompt: str) -> Done:
        """Buttons for the configured standard texts of `kind`, in the agents' language."""
        ref = case_ref(self.case)
        buttons = tuple(
            Button(
                _label(self.t(f"standard.{kind}.{name}", agent=self.agent.name)),
                press_token(action, ref, name),
            )
            for name in names
        )
        done = self.done(None)
        return dataclasses.replace(done, text=self.t(prompt), choices=buttons, changed=False)

    def standard(self, conv: Conversation | None, kind: str, arg: str) -> tuple[str, str, str]:
        """(for the agents, for the customer, a language warning) of a standard reply's name or
        an agent's free text."""
        if arg in self.settings_names(kind):
            key = f"standard.{kind}.{arg}"
            theirs = self.customer_text(conv, key) if conv else self.t(key)
            return self.t(key), theirs, ""
        return arg, arg, self.language_warning(conv, arg) if conv else ""

    def settings_names(self, kind: str) -> tuple[str, ...]:
        settings = self.desk.settings
        return {
            "reject": settings.reject_reasons,
            "need": settings.need_requests,
            "reply": settings.replies,
        }[kind]

    def customer_text(self, conv: Conversation, key: str, **params: Any) -> str:
        catalog = self.desk.ctx.catalog
        return catalog.text(turn_locale(conv, catalog), key, params)

    def reply(self, arg: str) -> Done:
        """`/reply`: a canned reply (greeting, checking, payout timing) in their language."""
        if arg not in self.desk.settings.replies:
            return self.choices(
                Action.REPLY, self.desk.settings.replies, "reply", "team.pick.reply"
            )
        conv = self.conversation()
        if conv is None:
            raise Refusal("desk.error.no_conversation")
        self.join(conv)
        text = self.customer_text(conv, f"standard.reply.{arg}", agent=self.agent.name)
        signature = self.customer_text(conv, "handoff.signature", agent=self.agent.name)
        self._enqueue(conv, Reply("handoff.signature", f"{text}\n\n{signature}").to_payload())
        self.log("to_customer", text)
        return self.marked("sent", "team.relay.sent", warning="")

    # -- block ---------------------------------------------------------------------------------

    def block(self, arg: str) -> Done:
        """`/block 理由`: the customer's chat gets a fixed polite answer from now on."""
        if not arg:
            raise Refusal("team.error.block_reason")
        conv = self.conversation()
        if conv is None:
            raise Refusal("desk.error.no_conversation")
        if self.desk.with_person(conv):
            self.system(conv, "returned", "")
            self.case = dataclasses.replace(self.case, joined_by=None)
        self.uow.block(Block(conv.key, arg, self.agent.actor, self.now))
        self.audit("blocked", reason=arg)
        return self.done("team.done.block", reason=arg)

    def unblock(self, arg: str) -> Done:
        conv = self.conversation()
        if conv is None or not self.uow.unblock(conv.key):
            raise Refusal("team.error.not_blocked")
        self.audit("unblocked")
        return self.done("team.done.unblock")

    def audit(self, kind: str, **data: Any) -> None:
        """An audit line: a ticket event when the case has a ticket, and the case's log."""
        if self.ticket is not None:
            add_note(self.uow, self.ticket, self.agent.actor, self.now, kind, **data)
        self.log(kind, " ".join(str(v) for v in data.values()))

    def history(self, arg: str) -> Done:
        from bot.handoff._history import history

        return dataclasses.replace(self.done(None), text=history(self), changed=False)


def _label(text: str) -> str:
    """A button's label from a standard text: its first line, short."""
    line = text.splitlines()[0] if text else text
    return line if len(line) <= 24 else line[:23] + "…"


def compensate(acting: Acting, arg: str) -> Done:
    """`/compensate 12.50 interest|costs`: CPL Art. 53 compensation on an approved ticket, a
    payout of its own apart from the refund, shown to the customer and audited."""
    amount_text, _, kind_text = arg.partition(" ")
    try:
        amount = parse_yuan(amount_text)
        kind = CompensationKind(kind_text.strip().lower())
    except ValueError:
        raise Refusal("desk.error.compensation_format") from None
    ticket = acting.ticket
    order = acting.uow.order(ticket.order_id) if ticket else None
    if ticket is None or order is None:
        raise Refusal("desk.error.no_ticket")
    entry = tickets.compensate(
        acting.uow,
        acting.desk.ctx.config,
        ticket,
        order,
        kind,
        amount,
        acting.agent.actor,
        acting.now,
    )
    no, kind_key = ticket.ticket_no, f"compensation.kind.{kind.value}"
    conv = acting.conversation()
    if conv is not None:
        catalog = acting.desk.ctx.catalog
        name = catalog.text(turn_locale(conv, catalog), kind_key, {})
        acting.tell(conv, "handoff.compensated", kind=name, ticket_no=no, amount_fen=amount)
    return acting.done(
        "desk.done.compensate",
        kind=acting.t(kind_key),
        ticket_no=no,
        amount_fen=amount,
        idempotency_key=entry.idempotency_key,
    )


ACTIONS: dict[Action, Callable[[Acting, str], Done]] = {
    Action.CLAIM: Acting.claim,
    Action.APPROVE: Acting.approve,
    Action.REJECT: Acting.reject,
    Action.NEED: Acting.need,
    Action.REFUNDED: Acting.refunded,
    Action.RETURN: Acting.give_back,
    Action.OPEN: Acting.open,
    Action.COMPENSATE: compensate,
    Action.NOTE: Acting.note,
    Action.REPLY: Acting.reply,
    Action.HISTORY: Acting.history,
    Action.BLOCK: Acting.block,
    Action.UNBLOCK: Acting.unblock,
}
