"""The ticket lifecycle as a state machine: only the listed moves exist.

One `transitions.Machine` is built for the whole process (model=None); each call applies a ticket's
status to a throwaway model, fires the trigger and reads the new status back.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from transitions import Machine, MachineError

from bot.domain._models import TicketStatus as S

# trigger -> (sources, destination)
MOVES: Final[dict[str, tuple[tuple[S, ...], S]]] = {
    "claim": ((S.SUBMITTED,), S.IN_REVIEW),
    "request_info": ((S.SUBMITTED, S.IN_REVIEW, S.APPEALED), S.NEEDS_INFO),
    "supplement": ((S.NEEDS_INFO,), S.IN_REVIEW),
    "approve": ((S.SUBMITTED, S.IN_REVIEW, S.APPEALED), S.APPROVED),
    "reject": ((S.SUBMITTED, S.IN_REVIEW, S.APPEALED), S.REJECTED),
    "appeal": ((S.REJECTED,), S.APPEALED),
    "start_payout": ((S.APPROVED, S.REFUND_FAILED), S.REFUNDING),
    "mark_refunded": ((S.APPROVED, S.REFUNDING), S.REFUNDED),
    "payout_failed": ((S.REFUNDING,), S.REFUND_FAILED),
    "withdraw": ((S.SUBMITTED, S.IN_REVIEW, S.NEEDS_INFO, S.APPEALED), S.WITHDRAWN),
    "close": ((S.REFUNDED, S.REJECTED, S.WITHDRAWN), S.CLOSED),
}


class InvalidTransition(Exception):
    """A move the ticket lifecycle does not allow from the ticket's current status."""

    def __init__(self, status: S, trigger: str) -> None:
        super().__init__(f"a ticket in status {status.value!r} cannot {trigger!r}")
        self.status = status
        self.trigger = trigger


class _Model:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


@cache
def _machine() -> Machine:
    return Machine(
        model=None,
        states=[s.value for s in S],
        transitions=[
            {"trigger": trigger, "source": [s.value for s in sources], "dest": dest.value}
            for trigger, (sources, dest) in MOVES.items()
        ],
        initial=S.SUBMITTED.value,
        auto_transitions=False,
    )


def next_status(status: S, trigger: str) -> S:
    """The status after `trigger`, or InvalidTransition if the lifecycle forbids the move."""
    event = _machine().events.get(trigger)
    if event is None:
        raise InvalidTransition(status, trigger)
    model = _Model(status.value)
    try:
        event.trigger(model)
    except MachineError as exc:
        raise InvalidTransition(status, trigger) from exc
    return S(model.state)


def allowed_triggers(status: S) -> tuple[str, ...]:
    """The moves the lifecycle allows from `status` (for buttons and stale-button checks)."""
    return tuple(t for t, (sources, _) in MOVES.items() if status in sources)
