"""The metrics the store answers at scrape time, and readiness, on the hand-built histories (both
databases): tickets by status, overdue reviews and payouts, the outbox backlog and its age."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import generate_latest

from bot.clock import FixedClock
from bot.config import MetricsConfig
from bot.store import OutboxMessage, Store
from bot.telegram._watch import Watch

from .conftest import NOW


def sample(watch: Watch, name: str) -> float:
    text = generate_latest(watch.registry).decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[-1])


def test_scraped_figures_and_readiness(histories: Store) -> None:
    with histories.unit_of_work() as uow:
        uow.enqueue(
            OutboxMessage("telegram", "1", {"text": "hi"}, created_at=NOW - timedelta(minutes=10))
        )
    ticks = [100.0]
    watch = Watch(histories, FixedClock(NOW), MetricsConfig(), monotonic=lambda: ticks[0])
    assert sample(watch, 'refund_bot_tickets{status="approved"}') == 2
    assert sample(watch, 'refund_bot_tickets{status="refunded"}') == 1
    assert sample(watch, "refund_bot_overdue_payouts") == 1  # T20261012-0001, due 10-16
    assert sample(watch, "refund_bot_overdue_reviews") == 0
    assert sample(watch, "refund_bot_outbox_pending") == 1
    assert sample(watch, "refund_bot_outbox_oldest_pending_seconds") == 600
    assert sample(watch, "refund_bot_handoffs_open") == 0
    assert sample(watch, "refund_bot_store_up") == 1

    assert watch.ready() == (False, "telegram: no answer recently")
    watch.api_call("sendMessage", answered=True, ok=False)  # a 400: an answer, and an error
    assert sample(watch, 'refund_bot_bot_api_errors_total{method="sendMessage"}') == 1
    assert watch.ready() == (True, "ready")
    ticks[0] += MetricsConfig().telegram_fresh_seconds + 1
    assert watch.ready() == (False, "telegram: no answer recently")
    watch.api_call("getMe", answered=True, ok=True)

    histories.close()
    assert sample(watch, "refund_bot_store_up") == 0
    ready, detail = watch.ready()
    assert not ready and detail.startswith("store: ")
