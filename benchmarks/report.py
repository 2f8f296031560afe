"""How long `refund-bot report` takes over a store with 50,000 tickets (a figure, not a test).

    .venv/bin/python benchmarks/report.py [--tickets 50000] [--postgres URL]

Seeds a fresh SQLite file (or an empty PostgreSQL database) with executemany: tickets spread over
300 days, each with a submitted event and most with a decision, payouts and a payment, some with
an appeal, plus three funnel events per ticket; then times the report (every figure, as JSON and
as the HTML page) and the finance export over the whole period.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.calendar import WorkingCalendar
from bot.clock import SHANGHAI
from bot.domain import (
    BreakdownLine,
    EvidenceKind,
    EvidenceRequirement,
    Outcome,
    Priority,
    Quote,
    Reason,
)
from bot.reports import as_html, as_json, build, export_csv
from bot.store import Store, open_store, parse_store_url

FIRST = date(2026, 1, 5)
DAYS = 300

QUOTE = Quote(
    order_id="S0",
    reason=Reason.SEVEN_DAY,
    sub_reason=None,
    outcome=Outcome.REVIEW,
    amount_fen=10_000,
    cap_fen=10_000,
    breakdown=(BreakdownLine(key="breakdown.cash_paid", amount_fen=10_000),),
    coupon_returned_fen=0,
    evidence=EvidenceRequirement(
        min_count=0,
        max_files=5,
        max_size_bytes=10_000_000,
        allowed_kinds=(EvidenceKind.PHOTO,),
        hint_key="evidence.hint.activation_dispute",
    ),
    priority=Priority.NORMAL,
    review_due=None,
    payout_window=(1, 3),
    explanation=("decision.seven_day.review",),
    legal_refs=("cpl_25",),
).model_dump_json()


def ts(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat()


def seed(store: Store, tickets: int) -> None:
    """Customers, orders, tickets with events, payouts and funnel rows, through the store's own
    connection in one unit of work (executemany on SQLite, plain INSERTs batched on PostgreSQL)."""
    customers = tickets // 2
    reasons = ["seven_day", "service_issue", "mistaken_purchase", "other"]

    def ticket_rows() -> Iterator[dict[str, object]]:
        for t in range(tickets):
            created = datetime(2026, 1, 5, 10, tzinfo=SHANGHAI) + timedelta(
                days=t % DAYS, minutes=t % 600
            )
            outcome = t % 10  # 0-5 paid, 6 approved, 7 rejected, 8 appealed+approved, 9 open
            status = {6: "approved", 7: "rejected", 8: "refunding", 9: "in_review"}.get(
                outcome, "refunded"
            )
            yield {
                "no": f"T{created:%Y%m%d}-{t:06d}",
                "order": f"S{t:09d}",
                "customer": t % customers + 1,
                "reason": reasons[t % 4],
                "status": status,
                "priority": "high" if t % 13 == 0 else "normal",
                "approved": None if outcome in (7, 9) else 10_000,
                "review_due": (created + timedelta(days=4)).date(),
                "payout_due": (created + timedelta(days=8)).date(),
                "appeals": 1 if outcome == 8 else 0,
                "created": created,
                "outcome": outcome,
            }

    rows = list(ticket_rows())
    d = store.dialect  # type: ignore[attr-defined]
    with store.unit_of_work() as uow:
        conn = uow._conn  # type: ignore[attr-defined]

        def many(sql: str, params: list[dict[str, object]]) -> None:
            with closing(conn.cursor()) as cur:  # sqlite3's and psycopg's cursors alike
                cur.executemany(d.sql(sql), params)

        many(
            "INSERT INTO customers (customer_id, phone, name) VALUES (:id, :phone, :name)",
            [
                {"id": c + 1, "phone": f"+86137{c:08d}", "name": f"客户{c}"}
                for c in range(customers)
            ],
        )
        paid = d.ts(datetime(2026, 1, 1, tzinfo=SHANGHAI))
        end = d.ts(datetime(2027, 12, 31, tzinfo=SHANGHAI))
        many(
            "INSERT INTO orders VALUES (:order, :phone, '客户', '视频年卡', 'video_membership',"
            " 10000, 10000, 0, :no, :paid, :paid, :end, NULL, :no, 0, :channel, :yes, 'active')",
            [
                {
                    "order": r["order"],
                    "phone": f"+86137{(int(r['customer']) - 1):08d}",  # type: ignore[call-overload]
                    "paid": paid,
                    "end": end,
                    "channel": "wechat" if i % 2 else "alipay",
                    "no": False,  # Python bools: 0/1 in SQLite, boolean in PostgreSQL
                    "yes": True,
                }
                for i, r in enumerate(rows)
            ],
        )
        many(
            "INSERT INTO tickets VALUES (:no, :order, :customer, :reason, NULL, :status, :priority,"
            " 10000, :approved, :quote, :review_due, :payout_due, :appeals, NULL, :created,"
            " :created, 1)",
            [
                {
                    **{k: r[k] for k in ("no", "order", "customer", "reason", "status")},
                    **{k: r[k] for k in ("priority", "approved", "appeals")},
                    "quote": QUOTE,
                    "review_due": d.day(r["review_due"]),
                    "payout_due": d.day(r["payout_due"]),
                    "created": d.ts(r["created"]),  # type: ignore[arg-type]
                }
                for r in rows
            ],
        )
        events: list[dict[str, object]] = []
        refunds: list[dict[str, object]] = []
        funnel: list[dict[str, object]] = []
        for r in rows:
            created: datetime = r["created"]  # type: ignore[assignment]
            outcome = int(r["outcome"])  # type: ignore[call-overload]

            def event(
                after: timedelta,
                actor: str,
                kind: str,
                to: str | None,
                no: object = r["no"],
                created: datetime = created,
            ) -> None:
                at = d.ts(created + after)
                events.append(
                    {"no": no, "at": at, "actor": actor, "kind": kind, "to": to, "data": "{}"}
                )

            event(timedelta(0), f"customer:{r['customer']}", "submitted", "submitted")
            agent = f"agent:{100 + outcome}"
            if outcome in (7, 8):
                event(timedelta(days=1), agent, "reject", "rejected")
            if outcome == 8:
                event(timedelta(days=2), f"customer:{r['customer']}", "appeal", "appealed")
            if outcome <= 6 or outcome == 8:
                event(timedelta(days=2, hours=outcome), agent, "approve", "approved")
                refunds.append(
                    {
                        "key": f"{r['no']}/payout/0",
                        "no": r["no"],
                        "order": r["order"],
                        "state": "paid" if outcome <= 5 else "pending",
                        "at": d.ts(created + timedelta(days=2)),
                    }
                )
            if outcome <= 5:
                event(timedelta(days=3 + outcome), agent, "mark_refunded", "refunded")
            for step in ("started", "precheck", "submitted"):
                funnel.append({"user": str(r["customer"]), "step": step, "at": d.ts(created)})
        many(
            "INSERT INTO ticket_events (ticket_no, at, actor, kind, to_status, data)"
            " VALUES (:no, :at, :actor, :kind, :to, :data)",
            events,
        )
        many(
            "INSERT INTO refunds VALUES (:key, :no, :order, 10000, 'wechat', :state, :at)",
            refunds,
        )
        many(
            "INSERT INTO funnel_events (channel, user_id, step, detail, at)"
            " VALUES ('telegram', :user, :step, NULL, :at)",
            funnel,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'report-bench.sqlite3'}"
        store = open_store(parse_store_url(url))
        started = time.perf_counter()
        seed(store, args.tickets)
        print(f"seeded {args.tickets:,} tickets in {time.perf_counter() - started:.1f} s ({url})")
        cal = WorkingCalendar((), ())
        first, last = FIRST, FIRST + timedelta(days=DAYS)
        now = datetime(2026, 11, 30, 12, tzinfo=SHANGHAI)
        started = time.perf_counter()
        figures = build(store, cal, first, last, now)
        as_json(figures)
        took = time.perf_counter() - started
        print(f"report (every figure, JSON): {took:.2f} s for {figures['volume']['tickets']:,}")
        started = time.perf_counter()
        as_html(build(store, cal, first, last, now))
        print(f"report as HTML: {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        lines = export_csv(store, first, last).count("\n") - 1
        print(f"tickets export: {time.perf_counter() - started:.2f} s for {lines:,} rows")
        print(json.dumps(figures["service"], ensure_ascii=False))
        store.close()


if __name__ == "__main__":
    main()
