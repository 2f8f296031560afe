"""A case's whole history for `/history`: the ticket's events (who moved it, amounts, reasons),
the agents' notes, the messages both ways, the evidence and the rating, oldest first, in the
agents' language and local time."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.clock import to_local
from bot.dialogue import render
from bot.handoff._card import actor_name, event_name
from bot.money import format_fen

if TYPE_CHECKING:
    from bot.handoff._actions import Acting

HISTORY_LIMIT = 200  # lines; a longer history shows its latest lines


def history(acting: Acting) -> str:
    uow, case, ticket = acting.uow, acting.case, acting.ticket
    names = uow.agent_names()
    lines: list[tuple[datetime, int, str]] = []

    def add(at: datetime, actor: str, what: str) -> None:
        stamp = to_local(at).strftime("%m-%d %H:%M")
        lines.append(
            (at, len(lines), f"{stamp} · {actor_name(acting.desk.texts, names, actor)} · {what}")
        )

    if ticket is not None:
        for event in uow.events_of(ticket.ticket_no):
            add(event.at, event.actor, _event(acting, event.kind, event.data, event.to_status))
        for item in uow.evidence_of(ticket.ticket_no):
            caption = f" · {item.caption}" if item.caption else ""
            add(
                item.added_at,
                "customer",
                acting.t("team.history.evidence", kind=item.kind.value) + caption,
            )
        rating = uow.rating(ticket.ticket_no)
        if rating is not None:
            comment = f" · {rating.comment}" if rating.comment else ""
            add(
                rating.at, "customer", acting.t("team.history.rating", score=rating.score) + comment
            )
    assert case.case_id is not None
    for entry in uow.case_entries(case.case_id):
        add(entry.at, entry.actor, acting.t(f"team.history.{entry.kind}", text=entry.text))
    if not lines:
        return acting.t("team.history.empty")
    lines.sort()
    shown = [text for _, _, text in lines[-HISTORY_LIMIT:]]
    head = acting.t("team.history.head", ref=case.ticket_no or f"c{case.case_id}", count=len(lines))
    return "\n".join([head, *shown])


def _event(acting: Acting, kind: str, data: dict[str, Any], to_status: Any) -> str:
    what = event_name(acting.desk.texts, kind)
    if to_status is not None:
        what += f" → {acting.t(render.STATUS_KEYS + to_status.value)}"
    details = [
        format_fen(value) if name.endswith("_fen") and isinstance(value, int) else str(value)
        for name, value in data.items()
        if isinstance(value, str | int) and not isinstance(value, bool) and value != ""
    ]
    return what + (f" · {' · '.join(details)}" if details else "")
