"""CPL Art. 53 compensation checks, and the policy fingerprint on every decision (issue 14)."""

from __future__ import annotations

import pytest

from bot.calendar import WorkingCalendar
from bot.config import Policy, parse_config
from bot.domain import (
    CompensationKind,
    History,
    Reason,
    SubReason,
    Ticket,
    TicketStatus,
)
from bot.rules import (
    RULES_VERSION,
    assess,
    check_compensation,
    compensation_cap,
    policy_fingerprint,
)
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays)
NOW = at("2026-11-24 10:00")
INTEREST, COSTS = CompensationKind.INTEREST, CompensationKind.COSTS


def ticket(reason: Reason, status: TicketStatus) -> Ticket:
    sub = SubReason.BENEFITS_MISSING if reason is Reason.SERVICE_ISSUE else None
    quote = assess(make_order(), Reason.SEVEN_DAY, None, NOW, CONFIG.policy, CAL, History())
    return Ticket(
        ticket_no="T20261124-0001",
        order_id="XN20261120001",
        customer_id=1,
        reason=reason,
        sub_reason=sub,
        status=status,
        requested_fen=10000,
        quote=quote,
        created_at=NOW,
        updated_at=NOW,
    )


APPROVED_SERVICE = ticket(Reason.SERVICE_ISSUE, TicketStatus.APPROVED)

CASES: list[tuple[str, Ticket, CompensationKind, int, int, str | None]] = [
    ("interest within the cap", APPROVED_SERVICE, INTEREST, 10000, 0, None),
    ("costs within the cap", APPROVED_SERVICE, COSTS, 30000, 0, None),
    ("interest one fen above", APPROVED_SERVICE, INTEREST, 10001, 0,
     "agent.error.compensation_above_cap"),
    ("costs on top of earlier costs", APPROVED_SERVICE, COSTS, 5000, 26000,
     "agent.error.compensation_above_cap"),
    ("interest does not use up costs", APPROVED_SERVICE, COSTS, 30000, 0, None),
    ("while refunding", ticket(Reason.SERVICE_ISSUE, TicketStatus.REFUNDING), INTEREST, 100, 0,
     None),
    ("zero", APPROVED_SERVICE, INTEREST, 0, 0, "agent.error.amount_not_positive"),
    ("before approval", ticket(Reason.SERVICE_ISSUE, TicketStatus.IN_REVIEW), INTEREST, 100, 0,
     "agent.error.compensation_status"),
    ("after the payout", ticket(Reason.SERVICE_ISSUE, TicketStatus.REFUNDED), INTEREST, 100, 0,
     "agent.error.compensation_status"),
    ("seven-day return: no prepayment default", ticket(Reason.SEVEN_DAY, TicketStatus.APPROVED),
     INTEREST, 100, 0, "agent.error.compensation_reason"),
    ("mistaken purchase", ticket(Reason.MISTAKEN_PURCHASE, TicketStatus.APPROVED), COSTS, 100, 0,
     "agent.error.compensation_reason"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("t", "kind", "amount", "granted", "problem"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_check_compensation(
    t: Ticket, kind: CompensationKind, amount: int, granted: int, problem: str | None
) -> None:
    assert check_compensation(t, kind, amount, granted, CONFIG.policy) == problem


def test_caps_come_from_the_policy() -> None:
    assert compensation_cap(INTEREST, CONFIG.policy) == 10000
    assert compensation_cap(COSTS, CONFIG.policy) == 30000


# -- the policy fingerprint ---------------------------------------------------------------------


def with_policy(**changes: object) -> Policy:
    data = CONFIG.model_dump(mode="json")
    data["policy"].update(changes)
    return parse_config(data).policy


def test_every_decision_records_the_policy_that_made_it() -> None:
    q = assess(make_order(), Reason.SEVEN_DAY, None, NOW, CONFIG.policy, CAL, History())
    assert q.policy_fingerprint == policy_fingerprint(CONFIG.policy)
    version, _, digest = q.policy_fingerprint.partition("+")
    assert version == RULES_VERSION
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_the_fingerprint_changes_with_a_threshold_and_only_then() -> None:
    same = with_policy()
    lower = with_policy(fast_refund={"max_amount": "150.00"})
    assert policy_fingerprint(same) == policy_fingerprint(CONFIG.policy)
    assert policy_fingerprint(lower) != policy_fingerprint(CONFIG.policy)
    q = assess(make_order(), Reason.SEVEN_DAY, None, NOW, lower, CAL, History())
    assert q.policy_fingerprint == policy_fingerprint(lower)


def test_the_fingerprint_does_not_depend_on_the_order_of_mapping_keys() -> None:
    forward = with_policy(
        seven_day={"excluded_categories": {"game_points": "by_nature", "phone_topup": "statutory"}}
    )
    backward = with_policy(
        seven_day={"excluded_categories": {"phone_topup": "statutory", "game_points": "by_nature"}}
    )
    assert policy_fingerprint(forward) == policy_fingerprint(backward)


def test_a_quote_stored_before_fingerprints_still_reads() -> None:
    q = assess(make_order(), Reason.SEVEN_DAY, None, NOW, CONFIG.policy, CAL, History())
    data = q.model_dump(mode="json")
    del data["policy_fingerprint"]
    assert type(q).model_validate(data).policy_fingerprint is None
