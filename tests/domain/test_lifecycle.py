"""The ticket lifecycle allows exactly the listed moves."""

from __future__ import annotations

import pytest

from bot.domain import MOVES, InvalidTransition, TicketStatus, allowed_triggers, next_status

S = TicketStatus

HAPPY_PATHS = [
    [("claim", S.IN_REVIEW), ("approve", S.APPROVED), ("start_payout", S.REFUNDING),
     ("mark_refunded", S.REFUNDED), ("close", S.CLOSED)],
    [("request_info", S.NEEDS_INFO), ("supplement", S.IN_REVIEW), ("approve", S.APPROVED),
     ("mark_refunded", S.REFUNDED)],
    [("reject", S.REJECTED), ("appeal", S.APPEALED), ("approve", S.APPROVED)],
    [("reject", S.REJECTED), ("appeal", S.APPEALED), ("reject", S.REJECTED), ("close", S.CLOSED)],
    [("approve", S.APPROVED), ("start_payout", S.REFUNDING), ("payout_failed", S.REFUND_FAILED),
     ("start_payout", S.REFUNDING), ("mark_refunded", S.REFUNDED)],
    [("withdraw", S.WITHDRAWN), ("close", S.CLOSED)],
]  # fmt: skip


@pytest.mark.parametrize("path", HAPPY_PATHS)
def test_allowed_paths(path: list[tuple[str, TicketStatus]]) -> None:
    status = S.SUBMITTED
    for trigger, expected in path:
        status = next_status(status, trigger)
        assert status is expected


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("trigger", sorted(MOVES))
def test_every_move_not_listed_is_refused(status: TicketStatus, trigger: str) -> None:
    sources, dest = MOVES[trigger]
    if status in sources:
        assert next_status(status, trigger) is dest
    else:
        with pytest.raises(InvalidTransition, match=f"cannot '{trigger}'"):
            next_status(status, trigger)


def test_unknown_trigger_is_a_domain_error() -> None:
    with pytest.raises(InvalidTransition):
        next_status(S.SUBMITTED, "teleport")


def test_closed_is_final_and_refunded_cannot_be_refunded_twice() -> None:
    assert allowed_triggers(S.CLOSED) == ()
    assert "mark_refunded" not in allowed_triggers(S.REFUNDED)
    assert set(allowed_triggers(S.REJECTED)) == {"appeal", "close"}
