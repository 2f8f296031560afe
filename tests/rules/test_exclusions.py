"""Seven-day exclusions need the customer's confirmation at purchase (SPEC §8, issue 14).

2017 Measures Art. 7–8 and CPL Implementing Regulations (2024) Art. 19: an activation or
by-nature exclusion the customer did not confirm at purchase is no ground to refuse; the request
is eligible, goes to review, and asks for no evidence the platform's own record gives.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.calendar import WorkingCalendar
from bot.config import ConfigError, Policy, parse_config
from bot.domain import Category, History, Outcome, Reason, SubReason
from bot.rules import assess
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays)
NOW = at("2026-11-24 10:00")
ACTIVATED = at("2026-11-20 10:05")


def policy_with(excluded: object) -> Policy:
    data = CONFIG.model_dump(mode="json")
    data["policy"]["seven_day"]["excluded_categories"] = excluded
    return parse_config(data).policy


STATUTORY = policy_with({"game_points": "statutory"})
BY_NATURE = policy_with({"game_points": "by_nature"})

# (case, policy, order fields, sub-reason) → outcome, explanation, evidence min, dispute offered
CASES: list[tuple[str, Policy, dict[str, Any], SubReason | None, Outcome, tuple[str, ...], int, bool]] = [
    ("statutory, unconfirmed", STATUTORY, {"category": "game_points"}, None,
     Outcome.REFUSED, ("precheck.seven_day.excluded_category",), 0, False),
    ("statutory, confirmed", STATUTORY,
     {"category": "game_points", "activation_exclusion_confirmed": True}, None,
     Outcome.REFUSED, ("precheck.seven_day.excluded_category",), 0, False),
    ("by nature, confirmed", BY_NATURE,
     {"category": "game_points", "activation_exclusion_confirmed": True}, None,
     Outcome.REFUSED, ("precheck.seven_day.excluded_confirmed",), 0, False),
    ("by nature, unconfirmed", BY_NATURE, {"category": "game_points"}, None,
     Outcome.REVIEW,
     ("precheck.seven_day.category_not_confirmed", "precheck.seven_day.eligible"), 0, False),
    ("activated, unconfirmed, 0 days used", CONFIG.policy, {"activated_at": ACTIVATED}, None,
     Outcome.REVIEW, ("precheck.activation.not_confirmed", "precheck.seven_day.eligible"), 0,
     False),
    ("activated, unconfirmed, dispute chosen anyway", CONFIG.policy, {"activated_at": ACTIVATED},
     SubReason.ACTIVATION_DISPUTE, Outcome.REVIEW,
     ("precheck.activation.not_confirmed", "precheck.seven_day.eligible"), 0, False),
    ("used 2 days, unconfirmed", CONFIG.policy, {"used_days": 2}, None,
     Outcome.REVIEW, ("precheck.activation.not_confirmed", "precheck.seven_day.eligible"), 0,
     False),
    ("activated, confirmed", CONFIG.policy,
     {"activated_at": ACTIVATED, "activation_exclusion_confirmed": True}, None,
     Outcome.REFUSED, ("precheck.seven_day.activated", "precheck.activation.confirmed"), 0, True),
    ("activated, confirmed, dispute", CONFIG.policy,
     {"activated_at": ACTIVATED, "activation_exclusion_confirmed": True},
     SubReason.ACTIVATION_DISPUTE, Outcome.REVIEW,
     ("precheck.activation_dispute", "precheck.activation.confirmed"), 1, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pol", "fields", "sub", "outcome", "explanation", "evidence_min", "dispute"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_exclusion_needs_confirmation_at_purchase(
    pol: Policy,
    fields: dict[str, Any],
    sub: SubReason | None,
    outcome: Outcome,
    explanation: tuple[str, ...],
    evidence_min: int,
    dispute: bool,
) -> None:
    q = assess(make_order(**fields), Reason.SEVEN_DAY, sub, NOW, pol, CAL, History())
    assert q.outcome is outcome
    assert q.explanation == explanation
    assert q.evidence.min_count == evidence_min
    assert ("activation_dispute" in q.offers) is dispute
    assert q.amount_fen == (10000 if outcome is not Outcome.REFUSED else 0)


def test_unconfirmed_activation_asks_for_no_evidence_the_platform_record_gives() -> None:
    order = make_order(activated_at=ACTIVATED)
    q = assess(order, Reason.SEVEN_DAY, None, NOW, CONFIG.policy, CAL, History())
    assert q.evidence.hint_key == "evidence.hint.seven_day_platform_record"
    assert q.explanation_params["used_days"] == 0
    assert q.review_due is not None  # a person reviews it; no fast refund


def test_the_list_form_still_reads_and_means_statutory() -> None:
    pol = policy_with(["game_points", "phone_topup"])
    assert pol.seven_day.excluded_categories == {
        Category.GAME_POINTS: "statutory",
        Category.PHONE_TOPUP: "statutory",
    }


def test_the_shipped_defaults_are_by_nature() -> None:
    assert CONFIG.policy.seven_day.excluded_categories == {
        Category.GAME_POINTS: "by_nature",
        Category.PHONE_TOPUP: "by_nature",
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"game_points": "sometimes"}, "policy.seven_day.excluded_categories.game_points"),
        ({"toys": "statutory"}, "policy.seven_day.excluded_categories.toys"),
        (["toys"], "policy.seven_day.excluded_categories.toys"),
    ],
)
def test_a_wrong_exclusion_names_the_field(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        policy_with(value)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
