"""The funnel steps a turn reached, recorded in its transaction for the reports (issue 16):
started an application → saw the pre-check → uploaded evidence → submitted, handoffs by why, and
the offers of a person after repeated misunderstanding ('offered').
Approved and paid are read from the tickets themselves."""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain import Reason
from bot.engine._effects import AgentOffered, Effect, HandoffRequested, TicketSubmitted
from bot.engine._events import Inbound, Kind

APPLY = "apply"
PRECHECK = (APPLY, "precheck")
EVIDENCE = (APPLY, "evidence")
STEPS = ("started", "precheck", "evidence", "submitted")
_APPLICATION_REASONS = frozenset(r.value for r in Reason if r is not Reason.OTHER)


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
        elif isinstance(effect, AgentOffered) and effect.misses is not None:
            steps.append(("offered", "misunderstood"))
        elif isinstance(effect, HandoffRequested):
            steps.append(("handoff", handoff_reason(effect.reason)))
    return steps


def handoff_reason(reason: str) -> str:
    """Why, as the report groups it: the application's reason "other" goes to a person by rule;
    asking for a person in the middle of any other application is the customer asking."""
    if reason in _APPLICATION_REASONS:
        return "customer_asked"
    return reason
