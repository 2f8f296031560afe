"""The customer's side of a team's desk (issue 15): an honest answer when no desk is configured
and outside business hours, a blocked chat's fixed answer, and the rating asked once after a
ticket ends."""

from __future__ import annotations

from datetime import datetime

from bot.calendar import WorkingCalendar, next_opening
from bot.clock import to_local
from bot.config import BusinessHours
from bot.dialogue._common import STEPS
from bot.engine import Turn, View
from bot.store import Rating
from bot.tickets import add_note


def is_open(now: datetime, hours: BusinessHours | None, calendar: WorkingCalendar) -> bool:
    """Whether people answer at the desk now (no hours configured: always)."""
    return hours is None or opening(now, hours, calendar) is None


def opening(now: datetime, hours: BusinessHours, calendar: WorkingCalendar) -> datetime | None:
    """The next opening of the desk (None: open now), in local time."""
    return next_opening(to_local(now), hours.start, hours.end, calendar)


@STEPS.condition("has_desk")
def has_desk(turn: Turn) -> bool:
    """An agent desk is configured: a person can take the chat."""
    return turn.services.config.agent_desk.chat_id is not None


@STEPS.action("no_desk")
def no_desk(turn: Turn) -> None:
    """No desk: never promise a person; offer the configured contacts and note the request on
    the ticket the customer is about, if any."""
    contact = turn.services.config.agent_desk.contact
    lines = [
        turn.t(f"care.contact.{name}", **{name: value})
        for name, value in (
            ("hotline", contact.hotline),
            ("hours", contact.hours),
            ("email", contact.email),
        )
        if value
    ] or [turn.t("care.contact.none")]
    ticket_no = turn.data.get("ticket_no")
    ticket = turn.uow.ticket(ticket_no) if ticket_no else None
    if ticket is not None and ticket.customer_id == turn.conv.customer_id:
        add_note(turn.uow, ticket, "customer", turn.now, "handoff_requested", desk="none")
        turn.say("care.no_desk", contact="\n".join(lines))
    else:
        turn.say("care.no_desk_plain", contact="\n".join(lines))


@STEPS.action("after_hours")
def after_hours(turn: Turn) -> None:
    """Outside business hours the case waits in the queue: say when a person will answer."""
    hours = turn.services.config.agent_desk.hours
    if hours is None:
        return
    opens = opening(turn.now, hours, turn.services.calendar)
    if opens is not None:
        turn.say("care.after_hours", opens=opens.strftime("%Y-%m-%d %H:%M"))


@STEPS.condition("is_blocked")
def is_blocked(turn: Turn) -> bool:
    return turn.uow.blocked(turn.conv.key) is not None


@STEPS.action("say_blocked")
def say_blocked(turn: Turn) -> None:
    turn.say("care.blocked")


@STEPS.action("ask_rating")
def ask_rating(turn: Turn) -> None:
    """The desk asks once for a rating of ticket `arg` (it records that it asked)."""
    turn.data["rating_ticket"] = turn.arg


@STEPS.view("rating_ask")
def rating_ask(turn: Turn) -> View:
    return View(params={"ticket_no": turn.data.get("rating_ticket", "")})


@STEPS.condition("is_score")
def is_score(turn: Turn) -> bool:
    return turn.arg in ("1", "2", "3", "4", "5") and bool(turn.data.get("rating_ticket"))


@STEPS.action("save_rating")
def save_rating(turn: Turn) -> None:
    ticket_no = str(turn.data["rating_ticket"])
    turn.uow.add_rating(Rating(ticket_no, int(turn.arg or 0), turn.now))


@STEPS.action("save_rating_comment")
def save_rating_comment(turn: Turn) -> None:
    ticket_no = turn.data.pop("rating_ticket", None)
    if ticket_no and turn.arg:
        turn.uow.comment_rating(str(ticket_no), turn.arg.strip())
    turn.say("care.rating.thanks")


@STEPS.action("end_rating")
def end_rating(turn: Turn) -> None:
    turn.data.pop("rating_ticket", None)
    turn.say("care.rating.thanks")
