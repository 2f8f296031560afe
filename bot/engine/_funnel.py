"""The funnel steps a turn reached, recorded in its transaction for the reports (issue 16):
started an application → saw the pre-check → uploaded evidence → submitted, and handoffs by why.
Approved and paid are read from the tickets themselves."""

from __future__ import annotations

from collections.abc import Iterable

from bot.engine._effects import Effect, HandoffRequested, TicketSubmitted
from bot.engine._events import Inbound, Kind

APPLY = "apply"
PRECHECK = (APPLY, "precheck")
EVIDENCE = (APPLY, "evidence")
STEPS = ("started", "precheck", "evidence", "submitted")


def funnel_steps(
    before: tuple[str, str], after: tuple[str, str], event: Inbound, effects: Iterable[Effect]
) -> list[tuple[str, str | None]]:
    """(step, detail) of each funnel step this turn reached."""
    steps: list[tuple[str, str | None]] = []
    if after[0] == APPLY and before[0] != APPLY:
        steps.append(("started", None))
    if after == PRECHECK and before != PRECHECK:
        steps.append(("precheck", None))
    if event.kind is Kind.FILE and before == EVIDENCE:
        steps.append(("evidence", None))
    for effect in effects:
        if isinstance(effect, TicketSubmitted):
            steps.append(("submitted", None))
        elif isinstance(effect, HandoffRequested):
            steps.append(("handoff", effect.reason))
    return steps
