"""Hand-built ticket histories with the report's figures worked out by hand (see test_report.py).

The period is 2026-09-28 – 2026-10-18 around the 2026 National Day holiday (Oct 1–7 rest days,
Saturday Oct 10 a make-up working day); the report is made on 2026-10-20.

- T20260930-0001 seven_day, normal, ¥100 asked, created Wed 09-30 10:00, review due 10-09:
  rejected by agent 7 on Thu 10-08 (first working day after the holiday: 1 working day),
  appealed 10-09, approved by agent 7 on 10-09 (¥100, coupon ¥20 back), payout due 10-30.
- T20261009-0001 mistaken_purchase/duplicate, fast, ¥50, created Fri 10-09 10:00 and approved by
  the system at once (fast refund), payout due 10-13, marked refunded by agent 8 on Mon 10-12
  (Sat 10-10 is a working day: 2 working days), payout paid.
- T20261012-0001 service_issue/merchant_unreachable, high, ¥80, created Mon 10-12 10:00, review
  due 10-13, approved by agent 8 on 10-13 (1 working day), payout due 10-16, never paid: overdue.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SHANGHAI
from bot.domain import (
    Order,
    PaymentChannel,
    Priority,
    Reason,
    RefundEntry,
    RefundState,
    SubReason,
    TicketEvent,
    TicketStatus,
)
from bot.store import ConversationKey, Store
from tests.store.conftest import (  # noqa: F401  (fixtures: every test runs on both backends)
    Make,
    backend,
    database_url,
    open_store,
    pg_databases,
    store,
)

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
NOW = datetime(2026, 10, 20, 10, 0, tzinfo=SHANGHAI)
FROM, TO = date(2026, 9, 28), date(2026, 10, 18)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def _ticket(
    store: Store,  # noqa: F811
    make: Make,
    no: str,
    order: Order,
    created: datetime,
    events: list[tuple[datetime, str, str, TicketStatus | None, dict[str, Any]]],
    **fields: Any,
) -> None:
    with store.unit_of_work() as uow:
        uow.upsert_order(order)
        customer = uow.customer_by_phone(order.phone)
        assert customer is not None
        ticket = make.ticket(
            no, customer.customer_id, order.order_id, created_at=created, updated_at=created
        )
        uow.add_ticket(ticket.model_copy(update=fields))
        for moment, actor, kind, to_status, data in events:
            uow.add_event(
                TicketEvent(
                    ticket_no=no, at=moment, actor=actor, kind=kind, to_status=to_status, data=data
                )
            )


@pytest.fixture
def histories(store: Store) -> Store:  # noqa: F811
    """The three tickets above, their payouts and a funnel, on SQLite and on PostgreSQL."""
    make = Make()
    s = TicketStatus
    o1 = make.order("O1", paid_at=at(9, 28), service_start=at(9, 28))
    _ticket(
        store, make, "T20260930-0001", o1, at(9, 30),
        [
            (at(9, 30), "customer:1", "submitted", s.SUBMITTED, {"amount_fen": 10_000}),
            (at(10, 8), "agent:7", "reject", s.REJECTED, {"reason": "no proof"}),
            (at(10, 9, 9), "customer:1", "appeal", s.APPEALED, {}),
            (at(10, 9, 11), "agent:7", "approve", s.APPROVED, {"amount_fen": 10_000}),
            (at(10, 9, 11), "agent:7", "coupon_returned", None, {"coupon_fen": 2_000}),
        ],
        status=s.APPROVED, approved_fen=10_000, review_due=date(2026, 10, 9),
        quote=make.quote("O1", policy_fingerprint="2026.12+0123456789ab"),
        payout_due=date(2026, 10, 30), appeal_count=1,
    )  # fmt: skip
    o2 = make.order(
        "O2", paid_at=at(10, 8), service_start=at(10, 8), cash_paid_fen=5_000, coupon_fen=0
    )
    _ticket(
        store, make, "T20261009-0001", o2, at(10, 9),
        [
            (at(10, 9), "customer:1", "submitted", s.SUBMITTED, {"amount_fen": 5_000}),
            (at(10, 9), "system", "approve", s.APPROVED, {"amount_fen": 5_000}),
            (at(10, 12), "agent:8", "mark_refunded", s.REFUNDED, {"amount_fen": 5_000}),
        ],
        status=s.REFUNDED, reason=Reason.MISTAKEN_PURCHASE, sub_reason=SubReason.DUPLICATE,
        priority=Priority.FAST, requested_fen=5_000, approved_fen=5_000,
        review_due=None, payout_due=date(2026, 10, 13),
    )  # fmt: skip
    o3 = make.order(
        "O3", paid_at=at(10, 1), service_start=at(10, 1), payment_channel=PaymentChannel.ALIPAY
    )
    _ticket(
        store, make, "T20261012-0001", o3, at(10, 12),
        [
            (at(10, 12), "customer:1", "submitted", s.SUBMITTED, {"amount_fen": 8_000}),
            (at(10, 13), "agent:8", "approve", s.APPROVED, {"amount_fen": 8_000}),
        ],
        status=s.APPROVED, reason=Reason.SERVICE_ISSUE, sub_reason=SubReason.MERCHANT_UNREACHABLE,
        priority=Priority.HIGH, requested_fen=8_000, approved_fen=8_000,
        review_due=date(2026, 10, 13), payout_due=date(2026, 10, 16),
    )  # fmt: skip
    with store.unit_of_work() as uow:
        for no, order, amount, state, moment in (
            ("T20260930-0001", "O1", 10_000, RefundState.PENDING, at(10, 9, 11)),
            ("T20261009-0001", "O2", 5_000, RefundState.PAID, at(10, 9)),
            ("T20261012-0001", "O3", 8_000, RefundState.PENDING, at(10, 13)),
        ):
            channel = PaymentChannel.ALIPAY if order == "O3" else PaymentChannel.WECHAT
            uow.add_refund(
                RefundEntry(
                    idempotency_key=f"{no}/payout/0", ticket_no=no, order_id=order,
                    amount_fen=amount, channel=channel, state=state, created_at=moment,
                )
            )  # fmt: skip
        a, b, c = (ConversationKey("telegram", u) for u in ("1", "2", "3"))
        for key, step, detail in (
            (a, "started", None), (a, "precheck", None), (a, "evidence", None),
            (a, "evidence", None), (a, "submitted", None),
            (b, "started", None), (b, "precheck", None),
            (c, "started", None), (c, "offered", "misunderstood"), (c, "offered", "misunderstood"),
            (c, "handoff", "customer_asked"),
        ):  # fmt: skip
            uow.record_funnel(key, step, at(10, 5), detail)
        uow.record_funnel(a, "started", at(10, 25))  # after the period: not counted
        uow.remember_agent(7, "小王")
    return store
