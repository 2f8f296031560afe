"""Each decision cites exactly its own legal basis, each article once (SPEC §8, issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.calendar import WorkingCalendar
from bot.domain import History, Outcome, Reason, SubReason
from bot.rules import assess
from tests.factories import at, make_order, repo_config

CONFIG = repo_config()
CAL = WorkingCalendar(CONFIG.calendar.fallback_holidays, CONFIG.calendar.fallback_workdays)
NOW = at("2026-11-24 10:00")
ACTIVATED = {"activated_at": at("2026-11-20 10:05")}
SEVEN = ("cpl_25",)
EXCLUSION = ("cpl_25", "measures_art7", "impl_reg_19")
DISPUTE = ("cpl_25", "measures_art7", "ecl_49")
PREPAID = ("cpl_53", "spc_prepaid_2025")

CASES: list[tuple[str, dict[str, Any], Reason, SubReason | None, Outcome, tuple[str, ...]]] = [
    ("seven-day eligible", {}, Reason.SEVEN_DAY, None, Outcome.AUTO_APPROVE, SEVEN),
    ("seven-day window passed", {"paid_at": at("2026-11-01 10:00")}, Reason.SEVEN_DAY, None,
     Outcome.REFUSED, SEVEN),
    ("seven-day not supported", {"seven_day_supported": False}, Reason.SEVEN_DAY, None,
     Outcome.REFUSED, SEVEN),
    ("activated, unconfirmed", ACTIVATED, Reason.SEVEN_DAY, None, Outcome.REVIEW, EXCLUSION),
    ("activated, confirmed", {**ACTIVATED, "activation_exclusion_confirmed": True},
     Reason.SEVEN_DAY, None, Outcome.REFUSED, EXCLUSION),
    ("activation dispute", {**ACTIVATED, "activation_exclusion_confirmed": True},
     Reason.SEVEN_DAY, SubReason.ACTIVATION_DISPUTE, Outcome.REVIEW, DISPUTE),
    ("game points, confirmed", {"category": "game_points", "activation_exclusion_confirmed": True},
     Reason.SEVEN_DAY, None, Outcome.REFUSED, EXCLUSION),
    ("game points, unconfirmed", {"category": "game_points"}, Reason.SEVEN_DAY, None,
     Outcome.REVIEW, EXCLUSION),
    ("benefits missing", {}, Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING, Outcome.REVIEW,
     PREPAID),
    ("closed store", {"merchant_status": "closed", "used_days": 90}, Reason.SERVICE_ISSUE,
     SubReason.MERCHANT_UNREACHABLE, Outcome.REVIEW, ("cpl_44", *PREPAID)),
    ("mistaken purchase", {}, Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN, Outcome.REVIEW, ()),
    ("mistaken, partly used", {"used_days": 30}, Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN,
     Outcome.REVIEW, ()),
    ("duplicate, not verified", {}, Reason.MISTAKEN_PURCHASE, SubReason.DUPLICATE, Outcome.REVIEW,
     ()),
    ("other", {}, Reason.OTHER, None, Outcome.AGENT, ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "reason", "sub", "outcome", "legal"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_decision_cites_its_own_basis_once(
    overrides: dict[str, Any],
    reason: Reason,
    sub: SubReason | None,
    outcome: Outcome,
    legal: tuple[str, ...],
) -> None:
    q = assess(make_order(**overrides), reason, sub, NOW, CONFIG.policy, CAL, History())
    assert q.outcome is outcome
    assert q.legal_refs == legal
    assert len(set(q.legal_refs)) == len(q.legal_refs)


def test_a_mistaken_purchase_borrows_no_statute() -> None:
    q = assess(
        make_order(), Reason.MISTAKEN_PURCHASE, SubReason.MISTAKEN, NOW, CONFIG.policy, CAL,
        History(),
    )  # fmt: skip
    assert "ecl_49" not in q.legal_refs and "cpl_53" not in q.legal_refs


def test_every_cited_article_is_defined_in_the_shipped_config() -> None:
    cited = {ref for case in CASES for ref in case[5]}
    assert cited <= set(CONFIG.legal)
