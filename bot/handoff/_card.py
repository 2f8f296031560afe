"""What agents see: the case card, the topic name, the queue and the overdue announcement, in the
agents' locale, with the buttons they press. Reads through the caller's unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from bot.clock import to_local
from bot.config import Config
from bot.dialogue import render
from bot.domain import (
    CompensationKind,
    Evidence,
    Order,
    Outcome,
    RefundState,
    Ticket,
    TicketStatus,
    allowed_triggers,
)
from bot.engine import Button, turn_locale
from bot.i18n import Catalog
from bot.rules import compensation_cap, is_overdue
from bot.store import Conversation, DeskCase, UnitOfWork

TOPIC_NAME_LIMIT = 128  # createForumTopic's limit
TRANSCRIPT_LINE_LIMIT = 200  # characters of one transcript line on the card
PRESS_PREFIX = "d:"  # callback data of the desk's buttons; the engine's tokens never start so


class Action(StrEnum):
    CLAIM = "claim"
    APPROVE = "approve"
    REJECT = "reject"
    NEED = "need"
    REFUNDED = "refunded"
    RETURN = "return"
    OPEN = "open"  # post a fresh card (from the queue or an overdue announcement)
    COMPENSATE = "compensate"  # CPL Art. 53 interest / costs, apart from the refund
    NOTE = "note"  # a note among the agents, never sent
    REPLY = "reply"  # a canned reply in the customer's language
    HISTORY = "history"  # the case's whole history
    BLOCK = "block"
    UNBLOCK = "unblock"


# callback data must stay within 64 bytes: "d:ap:T20261124-0007" is 19
_CODES: dict[Action, str] = {
    Action.CLAIM: "cl",
    Action.APPROVE: "ap",
    Action.REJECT: "rj",
    Action.NEED: "nd",
    Action.REFUNDED: "rf",
    Action.RETURN: "rt",
    Action.OPEN: "op",
    Action.COMPENSATE: "cp",
    Action.NOTE: "no",
    Action.REPLY: "re",
    Action.HISTORY: "hi",
    Action.BLOCK: "bl",
    Action.UNBLOCK: "ub",
}
_BY_CODE = {code: action for action, code in _CODES.items()}
# the lifecycle trigger behind each action that moves a ticket
TRIGGERS: dict[Action, str] = {
    Action.CLAIM: "claim",
    Action.APPROVE: "approve",
    Action.REJECT: "reject",
    Action.NEED: "request_info",
    Action.REFUNDED: "mark_refunded",
}
REVIEWING = (TicketStatus.SUBMITTED, TicketStatus.IN_REVIEW, TicketStatus.APPEALED)
PAYING = (TicketStatus.APPROVED, TicketStatus.REFUNDING)


def press_token(action: Action, ref: str, choice: str = "") -> str:
    """The callback data of a desk button: `d:<action>:<ticket number or c<case id>>`, and
    `:<choice>` for a standard reply picked from a list."""
    token = f"{PRESS_PREFIX}{_CODES[action]}:{ref}"
    return f"{token}:{choice}" if choice else token


def parse_press(token: str) -> tuple[Action, str, str] | None:
    """(action, ref, choice) of a desk button's callback data, None if it is no desk button."""
    if not token.startswith(PRESS_PREFIX):
        return None
    code, _, rest = token.removeprefix(PRESS_PREFIX).partition(":")
    ref, _, choice = rest.partition(":")
    if code not in _BY_CODE or not ref:
        return None
    return _BY_CODE[code], ref, choice


def case_ref(case: DeskCase) -> str:
    """How buttons and commands name a case: its ticket number, else `c<case id>`."""
    return case.ticket_no or f"c{case.case_id}"


@dataclass(frozen=True)
class Texts:
    """The desk's texts in one locale; a `render.Speaker`, so the dialogue's renderers serve."""

    catalog: Catalog
    locale: str
    config: Config

    def t(self, key: str, **params: Any) -> str:
        return self.catalog.text(self.locale, key, params)


@dataclass(frozen=True)
class Card:
    """A case card: where it goes (topic name), what it says, its buttons and the evidence."""

    case: DeskCase
    topic_name: str
    text: str
    buttons: tuple[Button, ...]
    evidence: tuple[tuple[Evidence, str], ...]  # each file with its caption
    mention: tuple[int, str] | None = None  # the agent holding the ticket: (user id, name)


def holder(t: Texts, names: dict[int, str], ticket: Ticket) -> str:
    if ticket.assignee is None:
        return t.t("desk.nobody")
    return names.get(ticket.assignee, f"#{ticket.assignee}")


def deadline(ticket: Ticket) -> date | None:
    """The deadline the ticket is waiting on: its review, else its payout."""
    if ticket.status in REVIEWING:
        return ticket.review_due
    if ticket.status in PAYING:
        return ticket.payout_due
    return None


def priority(t: Texts, ticket: Ticket) -> str:
    return t.t(f"desk.priority.{ticket.priority.value}")


def open_button(t: Texts, ticket_no: str) -> Button:
    return Button(t.t("desk.button.open", ticket_no=ticket_no), press_token(Action.OPEN, ticket_no))


def build_card(
    t: Texts, uow: UnitOfWork, case: DeskCase, now: datetime, fallback_name: str
) -> Card:
    """The card of a case as it stands now."""
    customer = uow.customer(case.customer_id) if case.customer_id is not None else None
    ticket = uow.ticket(case.ticket_no) if case.ticket_no else None
    conv = uow.conversation(case.conversation) if case.conversation else None
    name = customer.name if customer else fallback_name or _anonymous(case)
    language = turn_locale(conv, t.catalog) if conv else (customer and customer.locale) or "—"
    if customer is not None:
        head = t.t("desk.card.customer", name=name, phone=customer.phone, language=language)
    else:
        head = t.t("desk.card.unlinked", name=name, language=language)
    this_order = ticket.order_id if ticket else (conv.data.get("order_id") if conv else None)
    orders = uow.orders_of(customer.customer_id) if customer else []
    sections = [t.t("desk.card.head", why=_why(t, case.reason)), head]
    if orders:
        lines = "\n".join(_order_line(t, o, o.order_id == this_order) for o in orders[:10])
        sections.append(t.t("desk.card.orders", orders=lines))
    if ticket is not None:
        sections.extend(_ticket_sections(t, uow, ticket, now))
    else:
        sections.append(t.t("desk.card.no_ticket"))
    evidence = _evidence(uow, ticket, conv)
    if evidence:
        sections.append(t.t("desk.card.evidence", count=len(evidence)))
    else:
        sections.append(t.t("desk.card.no_evidence"))
    transcript = _transcript(t, conv)
    if transcript:
        sections.append(t.t("desk.card.transcript", lines=transcript))
    sections.extend(_team_sections(t, uow, case, ticket))
    sections.append(t.t("desk.card.help"))
    product = ""
    if ticket is not None:
        order = uow.order(ticket.order_id)
        product = order.product_name if order else ticket.order_id
        topic = t.t("desk.topic.ticket", ticket_no=ticket.ticket_no, name=name, product=product)
    else:
        topic = t.t("desk.topic.customer", name=name)
    return Card(
        case=case,
        topic_name=topic[:TOPIC_NAME_LIMIT],
        text="\n\n".join(sections),
        buttons=_buttons(t, case, ticket),
        evidence=captioned(t, evidence),
        mention=_mention(uow, ticket),
    )


CARD_NOTES = 3  # the latest notes on the card
CARD_EVENTS = 3  # the latest ticket events on the card


def _team_sections(t: Texts, uow: UnitOfWork, case: DeskCase, ticket: Ticket | None) -> list[str]:
    """What a team needs on the card: the latest events and notes, a block, the rating."""
    sections = []
    names = uow.agent_names()
    if ticket is not None:
        events = uow.events_of(ticket.ticket_no)[-CARD_EVENTS:]
        if events:
            lines = "\n".join(
                t.t(
                    "team.card.event",
                    at=to_local(e.at).strftime("%m-%d %H:%M"),
                    what=event_name(t, e.kind),
                    who=actor_name(t, names, e.actor),
                )
                for e in events
            )
            sections.append(t.t("team.card.events", lines=lines))
    notes = [e for e in uow.case_entries(case.case_id) if e.kind == "note"] if case.case_id else []
    if notes:
        lines = "\n".join(
            t.t(
                "team.card.note",
                who=actor_name(t, names, n.actor),
                text=n.text[:TRANSCRIPT_LINE_LIMIT],
            )
            for n in notes[-CARD_NOTES:]
        )
        sections.append(t.t("team.card.notes", count=len(notes), lines=lines))
    block = uow.blocked(case.conversation) if case.conversation else None
    if block is not None:
        sections.append(t.t("team.card.blocked", reason=block.reason))
    rating = uow.rating(ticket.ticket_no) if ticket else None
    if rating is not None:
        comment = t.t("team.card.comment", comment=rating.comment) if rating.comment else ""
        sections.append(t.t("team.card.rating", stars="★" * rating.score, comment=comment))
    return sections


def event_name(t: Texts, kind: str) -> str:
    key = f"team.event.{kind}"
    return t.t(key) if t.catalog.has(key) else kind


def actor_name(t: Texts, names: dict[int, str], actor: str) -> str:
    """Who did something: an agent's name, "customer", "system"."""
    kind, _, user = actor.partition(":")
    if kind == "agent" and user.isdigit():
        return names.get(int(user), f"#{user}")
    key = f"team.who.{kind}"
    return t.t(key) if t.catalog.has(key) else actor


def _mention(uow: UnitOfWork, ticket: Ticket | None) -> tuple[int, str] | None:
    if ticket is None or ticket.assignee is None or ticket.status not in REVIEWING:
        return None
    return ticket.assignee, uow.agent_names().get(ticket.assignee, f"#{ticket.assignee}")


def captioned(t: Texts, evidence: list[Evidence]) -> tuple[tuple[Evidence, str], ...]:
    """Each file with the caption it is re-sent with: which one of how many, and its own."""
    return tuple(
        (
            e,
            t.t(
                "desk.evidence",
                n=i,
                total=len(evidence),
                caption=f" · {e.caption}" if e.caption else "",
            ),
        )
        for i, e in enumerate(evidence, 1)
    )


def _anonymous(case: DeskCase) -> str:
    """A customer known only by their chat: "Telegram 1001"."""
    key = case.conversation
    return f"{key.channel.capitalize()} {key.user_id}" if key else "—"


def _why(t: Texts, reason: str) -> str:
    key = f"desk.why.{reason}"
    if t.catalog.has(key):
        return t.t(key)
    if t.catalog.has(f"reason.{reason}"):
        return t.t("desk.why.application", reason=t.t(f"reason.{reason}"))
    return reason


def _order_line(t: Texts, order: Order, this: bool) -> str:
    return t.t(
        "desk.card.order_line",
        order_id=order.order_id,
        product=order.product_name,
        paid_fen=order.cash_paid_fen,
        paid_on=render.day(to_local(order.paid_at).date()),
        channel=t.t(f"desk.channel.{order.payment_channel.value}"),
        mark=t.t("desk.card.this_order") if this else "",
    )


def _ticket_sections(t: Texts, uow: UnitOfWork, ticket: Ticket, now: datetime) -> list[str]:
    quote = ticket.quote
    order = uow.order(ticket.order_id)
    cap = max(order.cash_paid_fen - uow.refunded_fen(order.order_id), 0) if order else 0
    approved = (
        t.t("desk.card.approved", approved_fen=ticket.approved_fen)
        if ticket.approved_fen is not None
        else ""
    )
    low, high = quote.payout_window
    payout = (
        t.t("desk.card.payout_due", payout_due=render.day(ticket.payout_due))
        if ticket.payout_due
        else t.t("desk.card.payout_window", low=low, high=high)
    )
    sections = [
        t.t(
            "desk.card.ticket",
            ticket_no=ticket.ticket_no,
            status=render.status_name(t, ticket),
            priority=priority(t, ticket),
            holder=holder(t, uow.agent_names(), ticket),
        )
        + "\n"
        + t.t(
            "desk.card.reason",
            reason=render.reason_label(
                t, ticket.reason.value, ticket.sub_reason.value if ticket.sub_reason else None
            ),
        ),
        t.t(
            "desk.card.decision",
            outcome=t.t(f"precheck.outcome.{quote.outcome.value}"),
            explanation=render.explanation(t, quote),
        ),
    ]
    if quote.outcome is not Outcome.REFUSED:
        sections.append(t.t("desk.card.breakdown", breakdown=render.breakdown(t, quote)))
    sections.append(
        t.t("desk.card.amounts", requested_fen=ticket.requested_fen, cap_fen=cap, approved=approved)
        + "\n"
        + t.t(
            "desk.card.deadlines",
            review_due=render.day(ticket.review_due),
            payout=payout,
            overdue=t.t("desk.card.overdue") if is_overdue(ticket, now) else "",
        )
    )
    compensation = _compensation(t, uow, ticket)
    if compensation:
        sections[-1] += "\n" + compensation
    return sections


def _compensation(t: Texts, uow: UnitOfWork, ticket: Ticket) -> str:
    """The CPL Art. 53 line: interest and costs added so far against their caps, apart from the
    refund; on a ticket whose reason allows them, or that has some."""
    added = uow.compensations_of_ticket(ticket.ticket_no)
    entries = [c for c in added if c.state is not RefundState.FAILED]
    if not entries and ticket.reason not in t.config.policy.compensation.reasons:
        return ""
    kinds = " · ".join(
        t.t(
            "desk.card.compensation_kind",
            kind=t.t(f"desk.card.compensation_name.{kind.value}"),
            granted_fen=sum(c.amount_fen for c in entries if c.kind is kind),
            cap_fen=compensation_cap(kind, t.config.policy),
        )
        for kind in CompensationKind
    )
    return t.t("desk.card.compensation", kinds=kinds)


def _evidence(uow: UnitOfWork, ticket: Ticket | None, conv: Conversation | None) -> list[Evidence]:
    """The ticket's evidence, then files of an application the customer has not submitted yet."""
    items = uow.evidence_of(ticket.ticket_no) if ticket else []
    seen = {e.file_unique_id for e in items}
    for raw in conv.data.get("evidence", []) if conv else []:
        pending = Evidence.model_validate(raw)
        if pending.file_unique_id not in seen:
            items.append(pending)
            seen.add(pending.file_unique_id)
    return items


def _transcript(t: Texts, conv: Conversation | None) -> str:
    lines = t.config.agent_desk.transcript_lines
    if conv is None or lines == 0:
        return ""
    recent = conv.data.get("transcript", [])[-lines:]
    return "\n".join(
        t.t(
            "desk.card.line",
            who=t.t("desk.who.customer" if who == "customer" else "desk.who.bot"),
            text=str(text)[:TRANSCRIPT_LINE_LIMIT],
        )
        for who, text in recent
    )


def _buttons(t: Texts, case: DeskCase, ticket: Ticket | None) -> tuple[Button, ...]:
    """The actions the ticket's status allows now (a later press may still find it moved on)."""
    ref = case_ref(case)
    buttons = []
    if ticket is not None:
        allowed = allowed_triggers(ticket.status)
        for action in (Action.CLAIM, Action.APPROVE, Action.REJECT, Action.NEED, Action.REFUNDED):
            if TRIGGERS[action] in allowed:
                label = t.t(f"desk.button.{action.value}", amount_fen=ticket.requested_fen)
                buttons.append(Button(label, press_token(action, ref)))
    if case.conversation is not None:
        buttons.append(Button(t.t("desk.button.reply"), press_token(Action.REPLY, ref)))
        buttons.append(Button(t.t("desk.button.return"), press_token(Action.RETURN, ref)))
    buttons.append(Button(t.t("desk.button.history"), press_token(Action.HISTORY, ref)))
    return tuple(buttons)


def queue(t: Texts, uow: UnitOfWork, now: datetime) -> tuple[str, tuple[Button, ...]]:
    """Open tickets, overdue and unassigned first, then by priority and review deadline, with who
    holds them; a button for each."""
    # overdue first, then unassigned, then the store's order: priority, review due, age
    tickets = sorted(
        uow.open_tickets(), key=lambda x: (not is_overdue(x, now), x.assignee is not None)
    )
    if not tickets:
        return t.t("desk.queue.empty"), ()
    size = t.config.agent_desk.queue_size
    names = uow.agent_names()
    shown = tickets[:size]
    lines = [t.t("desk.queue.heading", count=len(tickets))]
    for n, ticket in enumerate(shown, 1):
        lines.append(
            t.t(
                "desk.queue.line",
                n=n,
                ticket_no=ticket.ticket_no,
                priority=priority(t, ticket),
                status=render.status_name(t, ticket),
                due=render.day(deadline(ticket)),
                holder=holder(t, names, ticket),
                overdue=t.t("desk.card.overdue") if is_overdue(ticket, now) else "",
            )
        )
    if len(tickets) > size:
        lines.append(t.t("desk.queue.more", more=len(tickets) - size))
    return "\n".join(lines), tuple(open_button(t, ticket.ticket_no) for ticket in shown)
