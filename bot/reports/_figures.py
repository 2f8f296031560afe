"""The report's figures, computed once from the store's report queries; every format renders
this one dictionary (so text, CSV, JSON and HTML cannot disagree).

Definitions (docs in README "Reports"):
- a ticket belongs to the period if it was created in it (Asia/Shanghai days, both ends included);
- decided = has an approve or reject; approval rate = finally approved / decided; time to
  decision and within deadline count the first decision;
- fast refund = approved by "system" (at submission, no person);
- within deadline: decided on or before its review_due (normal vs priority = fast/high);
  payout within window: marked refunded on or before its payout_due;
- times in Chinese working days: working days after the start day up to and including the end
  day (same day: 0); median, and p90 by nearest rank (the ⌈0.9·n⌉-th smallest);
- overdue now: as the desk's deadline job counts it, on the report's day (all tickets).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from bot.calendar import WorkingCalendar
from bot.clock import SHANGHAI, to_local
from bot.engine import FUNNEL_STEPS
from bot.store import Store

PRIORITY = ("fast", "high")
DECISIONS = ("approve", "reject")


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in Shanghai time."""
    begin = datetime(start.year, start.month, start.day, tzinfo=SHANGHAI)
    after = end + timedelta(days=1)
    return begin, datetime(after.year, after.month, after.day, tzinfo=SHANGHAI)


def _local_day(moment: datetime) -> date:
    return to_local(moment).date()


def percentile(values: list[int], share: float) -> int | None:
    """Nearest rank: the ⌈share·n⌉-th smallest value (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def build(
    store: Store, cal: WorkingCalendar, start: date, end: date, now: datetime
) -> dict[str, Any]:
    """Every figure of the report for tickets created from `start` to `end` (inclusive)."""
    begin, stop = period(start, end)
    today = to_local(now).date()
    with store.unit_of_work() as uow:
        tickets = uow.ticket_facts(begin, stop)
        trails = {f.ticket_no: f for f in uow.decision_facts(begin, stop)}
        agent_facts = uow.agent_facts(begin, stop)
        coupons = uow.coupons_returned_fen(begin, stop)
        paid_fen = uow.paid_fen(begin, stop)
        funnel = uow.funnel(begin, stop)
        handoffs = uow.handoff_reasons(begin, stop)
        backlog = uow.backlog(today)
        agents = uow.agent_names()
        # the desk's satisfaction scores given in the period, each to the agent who last acted
        # on the rated ticket (its decision or payout)
        ratings = uow.ratings_between(begin, stop)
        scores: dict[str, list[int]] = {}
        for rating in ratings:
            actors = [e.actor for e in uow.events_of(rating.ticket_no) if _is_agent(e.actor)]
            if actors:
                scores.setdefault(actors[-1], []).append(rating.score)
    day = _local_day
    working_days = functools.lru_cache(maxsize=None)(cal.working_days_between)

    decided = approved = fast = 0
    within: dict[str, list[int]] = {"normal": [0, 0], "priority": [0, 0]}
    payout_ok = [0, 0]
    to_decision: list[int] = []
    to_payout: list[int] = []
    appeals = Counter[str]()
    ever_approved = ever_paid = approved_fen = 0
    for t in tickets:
        f = trails.get(t.ticket_no)
        if f is None:
            continue
        if f.first_approve is not None:
            ever_approved += 1
            approved_fen += t.approved_fen or 0
        if f.paid is not None:
            ever_paid += 1
        if f.first_decision is not None:
            decided += 1
            approved += f.last_approve == f.last_decision  # after an appeal, its outcome
            fast += f.fast
            decided_on = day(f.first_decision)
            to_decision.append(working_days(day(t.created_at), decided_on))
            if t.review_due is not None and not f.fast:
                group = within["priority" if t.priority in PRIORITY else "normal"]
                group[1] += 1
                group[0] += decided_on <= t.review_due
        if f.first_approve is not None and f.paid is not None:
            paid_on = day(f.paid)
            to_payout.append(working_days(day(f.first_approve), paid_on))
            if t.payout_due is not None:
                payout_ok[1] += 1
                payout_ok[0] += paid_on <= t.payout_due
        if t.appeal_count and f.appealed is not None:
            last = f.last_decision
            if last is None or last < f.appealed:
                appeals["pending"] += 1
            else:
                appeals["approved" if f.last_approve == last else "rejected"] += 1

    per_day = Counter(day(t.created_at).isoformat() for t in tickets)
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    started = funnel.get("started", 0)
    total_handoffs = sum(handoffs.values())

    def agent_name(actor: str) -> str:
        user = actor.removeprefix("agent:")
        return agents.get(int(user), user) if user.isdigit() else user

    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "today": today.isoformat()},
        "volume": {
            "tickets": len(tickets),
            "by_reason": dict(sorted(Counter(t.reason for t in tickets).items())),
            "by_sub_reason": dict(
                sorted(Counter(f"{t.reason}/{t.sub_reason or '-'}" for t in tickets).items())
            ),
            "by_status": dict(sorted(Counter(t.status for t in tickets).items())),
            "per_day": {d: per_day.get(d, 0) for d in days},
        },
        "money_fen": {
            "requested": sum(t.requested_fen for t in tickets),
            "approved": approved_fen,
            "paid": paid_fen,
            "coupons_returned": coupons,
        },
        "decisions": {
            "decided": decided,
            "approved": approved,
            "rejected": decided - approved,
            "approval_rate": _share(approved, decided),
            "fast_refunds": fast,
            "fast_refund_share": _share(fast, len(tickets)),
        },
        "appeals": {
            "appealed": sum(appeals.values()),
            **{k: appeals.get(k, 0) for k in ("approved", "rejected", "pending")},
        },
        "service": {
            "reviews_within_deadline": {
                k: {"within": v[0], "of": v[1], "share": _share(v[0], v[1])}
                for k, v in within.items()
            },
            "payouts_within_window": {
                "within": payout_ok[0],
                "of": payout_ok[1],
                "share": _share(*payout_ok),
            },
            "working_days_to_decision": {
                "median": _median(to_decision),
                "p90": percentile(to_decision, 0.9),
            },
            "working_days_to_payout": {
                "median": _median(to_payout),
                "p90": percentile(to_payout, 0.9),
            },
            "overdue_now": {"reviews": backlog.overdue_reviews, "payouts": backlog.overdue_payouts},
        },
        "funnel": {
            **{step: funnel.get(step, 0) for step in FUNNEL_STEPS},
            "approved": ever_approved,
            "paid": ever_paid,
        },
        "handoffs": {
            "total": total_handoffs,
            "rate": _share(total_handoffs, started),
            "by_reason": dict(sorted(handoffs.items())),
            # conversations offered a person after repeated misunderstood input (taking the offer
            # is counted above as the customer asking)
            "offered_after_misunderstanding": funnel.get("offered", 0),
        },
        "agents": [
            {
                "agent": agent_name(a.actor),
                "cases": a.cases,
                "decisions": a.decisions,
                "median_first_response_minutes": _median(
                    [round(m) for m in a.first_responses_minutes]
                ),
                "rating": _mean(scores.get(a.actor, [])),
            }
            for a in agent_facts
        ],
        "ratings": {
            "count": len(ratings),
            "average": _mean([r.score for r in ratings]),
            "by_score": {str(n): sum(r.score == n for r in ratings) for n in range(1, 6)},
        },
    }


def _is_agent(actor: str) -> bool:
    return actor.startswith("agent:")


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
