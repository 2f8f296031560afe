"""What the bot did during a step, and the expectations checked against it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from bot.dialogue_tests._script import Expect, TicketExpect
from bot.domain import Ticket
from bot.money import format_fen


@dataclass(frozen=True)
class Sent:
    method: str
    text: str
    buttons: list[str]
    thread_id: int | None = None

    def render(self) -> str:
        where = f" (topic {self.thread_id})" if self.thread_id is not None else ""
        via = "" if self.method == "sendMessage" else f" [{self.method}]"
        body = self.text.replace("\n", "\n      ")
        keys = "  " + " ".join(f"[{b}]" for b in self.buttons) if self.buttons else ""
        return f"    «{body}»{keys}{via}{where}"


@dataclass
class Observation:
    replies: list[Sent] = field(default_factory=list)  # to the customer
    desk: list[Sent] = field(default_factory=list)  # to the agent desk
    answers: list[str] = field(default_factory=list)  # popups answering presses
    logs: list[str] = field(default_factory=list)  # warnings
    errors: list[str] = field(default_factory=list)  # errors raised or logged
    state: str = "—"

    def render(self) -> list[str]:
        out = ["  what the bot did:"]
        out.append(
            "    replies to the customer:" if self.replies else "    no reply to the customer"
        )
        out.extend(r.render() for r in self.replies)
        if self.desk:
            out.append("    in the agent desk:")
            out.extend(d.render() for d in self.desk)
        if self.answers:
            popups = ", ".join(repr(a) if a else "(no popup)" for a in self.answers)
            out.append(f"    press answered: {popups}")
        out.extend(f"    log: {line}" for line in self.logs)
        out.extend(f"    ERROR: {line}" for line in self.errors)
        out.append(f"    customer's state: {self.state}")
        return out


# -- expectations ----------------------------------------------------------------------------


def _joined(sent: list[Sent]) -> str:
    return "\n".join(s.text for s in sent)


class Facts(Protocol):
    """What expectations read from the store (the session's bot provides it)."""

    def tickets(self) -> list[Ticket]: ...  # the customer's, newest first
    def evidence_count(self, ticket_no: str) -> int: ...


def check(expect: Expect, seen: Observation, session: Facts) -> list[str]:
    """Every expectation that does not hold, in words."""
    problems: list[str] = []
    replies = _joined(seen.replies)
    for text in expect.reply or ():
        if text not in replies:
            problems.append(f"expected a reply containing {text!r}")
    for pattern in expect.reply_matches or ():
        if re.search(pattern, replies) is None:
            problems.append(f"expected a reply matching /{pattern}/")
    for text in expect.reply_lacks or ():
        if text in replies:
            problems.append(f"expected no reply containing {text!r}")
    if expect.no_reply and seen.replies:
        problems.append("expected no reply to the customer")
    # the buttons the step offers: the newest keyboard it sent (a later plain message, e.g. an
    # agent's words, does not take it away)
    offered = next((s.buttons for s in reversed(seen.replies) if s.buttons), [])
    if expect.buttons is not None and offered != expect.buttons:
        problems.append(f"expected the buttons {expect.buttons}, the step offered {offered}")
    for label in expect.buttons_include or ():
        if label not in offered:
            problems.append(f"expected a button 「{label}」, the step offered {offered}")
    if expect.answer is not None and not any(expect.answer in a for a in seen.answers):
        problems.append(f"expected the press to be answered with {expect.answer!r}")
    desk = _joined(seen.desk)
    for text in expect.desk or ():
        if text not in desk:
            problems.append(f"expected a message in the agent desk containing {text!r}")
    for pattern in expect.desk_matches or ():
        if re.search(pattern, desk) is None:
            problems.append(f"expected a message in the agent desk matching /{pattern}/")
    desk_labels = [label for s in seen.desk for label in s.buttons]
    for label in expect.desk_buttons_include or ():
        if label not in desk_labels:
            problems.append(f"expected a desk button 「{label}」, the desk got {desk_labels}")
    if expect.no_desk and seen.desk:
        problems.append("expected nothing in the agent desk")
    logged = "\n".join(seen.logs + seen.errors)
    for text in expect.log or ():
        if text not in logged:
            problems.append(f"expected a logged warning containing {text!r}")
    if expect.state is not None and seen.state != expect.state:
        problems.append(f"expected state {expect.state}, the customer is in {seen.state}")
    tickets = session.tickets() if expect.ticket or expect.tickets is not None else []
    if expect.tickets is not None and len(tickets) != expect.tickets:
        problems.append(f"expected {expect.tickets} ticket(s), the customer has {len(tickets)}")
    if expect.ticket is not None:
        problems.extend(_check_ticket(expect.ticket, tickets, session))
    return problems


def _money(fen: int | None) -> str:
    return format_fen(fen) if fen is not None else "none"


def _check_ticket(want: TicketExpect, tickets: list[Ticket], session: Facts) -> list[str]:
    if want.number is not None:
        ticket = next((t for t in tickets if t.ticket_no == want.number), None)
        if ticket is None:
            return [f"expected a ticket {want.number}, found {[t.ticket_no for t in tickets]}"]
    elif tickets:
        ticket = tickets[0]
    else:
        return ["expected a ticket, the customer has none"]
    problems = []
    amount = ticket.approved_fen if ticket.approved_fen is not None else ticket.requested_fen
    pairs: list[tuple[str, object, object, str, str]] = [
        ("status", want.status, ticket.status, str(want.status), ticket.status.value),
        ("amount", want.amount, amount, _money(want.amount), _money(amount)),
        (
            "requested amount",
            want.requested,
            ticket.requested_fen,
            _money(want.requested),
            _money(ticket.requested_fen),
        ),
        (
            "approved amount",
            want.approved,
            ticket.approved_fen,
            _money(want.approved),
            _money(ticket.approved_fen),
        ),
        ("priority", want.priority, ticket.priority, str(want.priority), ticket.priority.value),
        ("reason", want.reason, ticket.reason, str(want.reason), ticket.reason.value),
        (
            "sub-reason",
            want.sub_reason,
            ticket.sub_reason,
            str(want.sub_reason),
            str(ticket.sub_reason),
        ),
        (
            "review due",
            want.review_due,
            ticket.review_due,
            str(want.review_due),
            str(ticket.review_due),
        ),
        (
            "payout due",
            want.payout_due,
            ticket.payout_due,
            str(want.payout_due),
            str(ticket.payout_due),
        ),
        ("appeals", want.appeals, ticket.appeal_count, str(want.appeals), str(ticket.appeal_count)),
    ]
    for name, wanted, actual, wanted_text, actual_text in pairs:
        if wanted is not None and wanted != actual:
            problems.append(
                f"expected ticket {ticket.ticket_no} {name} {wanted_text}, found {actual_text}"
            )
    if want.evidence is not None:
        count = session.evidence_count(ticket.ticket_no)
        if count != want.evidence:
            problems.append(
                f"expected ticket {ticket.ticket_no} to hold {want.evidence} file(s), found {count}"
            )
    return problems
