"""The report's figures against hand-built histories (tests/reports/conftest.py works them out)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.calendar import WorkingCalendar
from bot.cli import main
from bot.reports import as_csv, as_json, as_text, build, flatten, percentile
from bot.store import Rating, Store

from .conftest import CONFIG, FROM, NOW, TO


def figures(store: Store) -> dict:  # type: ignore[type-arg]
    return build(store, WorkingCalendar((), ()), FROM, TO, NOW)


def test_volume_money_decisions_and_appeals(histories: Store) -> None:
    f = figures(histories)
    assert f["volume"]["tickets"] == 3
    assert f["volume"]["by_reason"] == {"mistaken_purchase": 1, "service_issue": 1, "seven_day": 1}
    assert f["volume"]["by_sub_reason"] == {
        "mistaken_purchase/duplicate": 1,
        "service_issue/merchant_unreachable": 1,
        "seven_day/-": 1,
    }
    assert f["volume"]["by_status"] == {"approved": 2, "refunded": 1}
    assert f["volume"]["per_day"]["2026-09-30"] == 1
    assert f["volume"]["per_day"]["2026-10-01"] == 0
    assert len(f["volume"]["per_day"]) == 21
    assert f["money_fen"] == {
        "requested": 23_000,
        "approved": 23_000,
        "paid": 5_000,
        "coupons_returned": 2_000,
    }
    assert f["decisions"] == {
        "decided": 3,
        "approved": 3,
        "rejected": 0,
        "approval_rate": 1.0,
        "fast_refunds": 1,
        "fast_refund_share": 0.3333,
    }
    assert f["appeals"] == {"appealed": 1, "approved": 1, "rejected": 0, "pending": 0}


def test_service_levels_in_working_days_across_the_holiday(histories: Store) -> None:
    s = figures(histories)["service"]
    assert s["reviews_within_deadline"] == {
        "normal": {"within": 1, "of": 1, "share": 1.0},
        "priority": {"within": 1, "of": 1, "share": 1.0},
    }
    assert s["payouts_within_window"] == {"within": 1, "of": 1, "share": 1.0}
    # 09-30 → 10-08 across the holiday: 1; fast: 0; 10-12 → 10-13: 1
    assert s["working_days_to_decision"] == {"median": 1, "p90": 1}
    # 10-09 → 10-12 with the make-up Saturday 10-10: 2
    assert s["working_days_to_payout"] == {"median": 2, "p90": 2}
    assert s["overdue_now"] == {"reviews": 0, "payouts": 1}


def test_funnel_handoffs_and_agents(histories: Store) -> None:
    f = figures(histories)
    assert f["funnel"] == {
        "started": 3,
        "precheck": 2,
        "evidence": 1,
        "submitted": 1,
        "approved": 3,
        "paid": 1,
    }
    assert f["handoffs"] == {
        "total": 1,
        "rate": 0.3333,
        "by_reason": {"customer_asked": 1},
        "offered_after_misunderstanding": 1,
    }
    assert f["agents"] == [
        {
            "agent": "小王",
            "cases": 1,
            "decisions": 2,
            "median_first_response_minutes": 8 * 24 * 60,
            "rating": None,
        },
        {
            "agent": "8",
            "cases": 2,
            "decisions": 1,
            "median_first_response_minutes": (3 * 24 * 60 + 24 * 60) / 2,
            "rating": None,
        },
    ]
    assert f["ratings"] == {
        "count": 0,
        "average": None,
        "by_score": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }


def test_ratings_go_to_the_agent_who_last_acted_on_the_ticket(histories: Store) -> None:
    with histories.unit_of_work() as uow:
        uow.add_rating(Rating("T20260930-0001", 3, NOW - timedelta(days=9)))  # agent 7 approved
        uow.add_rating(Rating("T20261009-0001", 5, NOW - timedelta(days=8)))  # agent 8 paid it
        uow.add_rating(Rating("T20261012-0001", 4, NOW))  # after the period: not counted
    f = figures(histories)
    assert f["ratings"] == {
        "count": 2,
        "average": 4.0,
        "by_score": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1},
    }
    assert {a["agent"]: a["rating"] for a in f["agents"]} == {"小王": 3.0, "8": 5.0}


def test_every_format_shows_the_same_figures(histories: Store) -> None:
    f = figures(histories)
    assert json.loads(as_json(f)) == f
    rows = list(csv.reader(io.StringIO(as_csv(f))))
    flat = {name: "" if v is None else str(v) for name, v in flatten(f)}
    assert rows[0] == ["figure", "value"]
    assert dict(rows[1:]) == flat
    text = as_text(f)
    assert "  requested: ¥230.00" in text
    assert "  fast_refund_share: 33.3%" in text
    assert "payouts: 1" in text
    assert "per_day.2026-09-30: 1" in text and "per_day.2026-10-01" not in text


def test_nearest_rank_percentile() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5], 0.9) == 5
    assert percentile(list(range(1, 11)), 0.9) == 9
    assert percentile(list(range(1, 12)), 0.9) == 10


def test_report_command_writes_json(
    histories: Store, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUND_BOT_DATABASE_URL", database_url)
    config = CONFIG
    out = tmp_path / "r.json"
    code = main(
        ["--config", str(config), "report", "--from", "2026-09-28", "--to", "2026-10-18",
         "--format", "json", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["volume"]["tickets"] == 3
    assert written["money_fen"]["paid"] == 5_000
    backwards = ["--from", "2026-10-18", "--to", "2026-10-01"]
    assert main(["--config", str(config), "report", *backwards]) == 2
