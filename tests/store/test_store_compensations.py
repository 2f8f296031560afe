"""Store contract: the compensation ledger (migration 0005), apart from the refunds' cap."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from bot.clock import SHANGHAI
from bot.domain import CompensationEntry, CompensationKind, PaymentChannel, RefundState
from bot.store import NotFound, RefundExceedsCashPaid, Store

if TYPE_CHECKING:
    from conftest import Make

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=SHANGHAI)

# make.seed_ticket stores order O1 with cash paid ¥100.00 and ticket T20261124-0001 on it.


def entry(
    key: str, amount_fen: int, kind: CompensationKind = CompensationKind.INTEREST
) -> CompensationEntry:
    return CompensationEntry(
        idempotency_key=key,
        ticket_no="T20261124-0001",
        order_id="O1",
        kind=kind,
        amount_fen=amount_fen,
        channel=PaymentChannel.WECHAT,
        actor="agent:9001",
        created_at=NOW,
    )


def test_compensation_is_recorded_once_per_key_and_listed(store: Store, make: Make) -> None:
    first, second = entry("k/interest/0", 1250), entry("k/costs/0", 3000, CompensationKind.COSTS)
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.add_compensation(first) is True
        assert uow.add_compensation(second) is True
        assert uow.add_compensation(entry("k/interest/0", 9999)) is False  # a retry pays nothing
    with store.unit_of_work() as uow:
        # oldest first; the same moment orders by key
        assert uow.compensations_of_ticket("T20261124-0001") == [second, first]
        assert uow.compensations_of_ticket("T20261124-0002") == []


def test_compensation_sits_outside_the_cash_paid_cap(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("refund-all", 10_000))  # the whole cash paid
        assert uow.add_compensation(entry("k/costs/0", 5000, CompensationKind.COSTS)) is True
        assert uow.refunded_fen("O1") == 10_000  # the price refund alone
    with pytest.raises(RefundExceedsCashPaid), store.unit_of_work() as uow:
        uow.add_refund(make.refund("one-fen-more", 1))  # the refunds' own cap still holds


def test_compensation_state_moves_and_a_missing_key_is_not_found(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_compensation(entry("k/interest/0", 1250))
        uow.set_compensation_state("k/interest/0", RefundState.PAID)
    with store.unit_of_work() as uow:
        (stored,) = uow.compensations_of_ticket("T20261124-0001")
        assert stored.state is RefundState.PAID
    with pytest.raises(NotFound), store.unit_of_work() as uow:
        uow.set_compensation_state("nope", RefundState.PAID)
