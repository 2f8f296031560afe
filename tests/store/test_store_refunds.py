"""Store contract: the refunds ledger, its idempotency keys and the cash-paid cap."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import PaymentChannel, RefundState
from bot.store import NotFound, RefundExceedsCashPaid, Store

if TYPE_CHECKING:
    from conftest import Make

# make.seed_ticket stores order O1 with cash paid ¥100.00 and ticket T20261124-0001 on it.
CASH = 10_000
PENDING, PAID, FAILED = RefundState.PENDING, RefundState.PAID, RefundState.FAILED


def test_add_refund_and_list_it(store: Store, make: Make) -> None:
    entry = make.refund("wx-T20261124-0001-1", 4_000, channel=PaymentChannel.ALIPAY)
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.add_refund(entry) is True
    with store.unit_of_work() as uow:
        assert uow.refunds_of_order("O1") == [entry]
        assert uow.refunds_of_order("O2") == []
        stored = uow.refunds_of_order("O1")[0]
    assert stored.created_at.utcoffset() == timedelta(0)


def test_repeated_idempotency_key_writes_nothing(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.add_refund(make.refund("k1", 4_000)) is True
    with store.unit_of_work() as uow:
        # A retry, even a confused one with another amount, must not pay twice.
        assert uow.add_refund(make.refund("k1", 4_000)) is False
        assert uow.add_refund(make.refund("k1", 1_000, state=PAID)) is False
        assert [(r.amount_fen, r.state) for r in uow.refunds_of_order("O1")] == [(4_000, PENDING)]
        assert uow.refunded_fen("O1") == 4_000


def test_retry_of_a_refund_that_filled_the_cap_is_not_an_error(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.add_refund(make.refund("k-full", CASH)) is True
        assert uow.add_refund(make.refund("k-full", CASH)) is False


def test_refunded_fen_counts_pending_and_paid_not_failed(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.refunded_fen("O1") == 0
        uow.add_refund(make.refund("a", 1_000, state=PENDING))
        uow.add_refund(make.refund("b", 2_000, state=PAID))
        uow.add_refund(make.refund("c", 4_000, state=FAILED))
        assert uow.refunded_fen("O1") == 3_000
        assert uow.refunded_fen("unknown") == 0


def test_pending_plus_paid_may_reach_the_cash_paid_but_not_pass_it(
    store: Store, make: Make
) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        assert uow.add_refund(make.refund("paid", 6_000, state=PAID))
        assert uow.add_refund(make.refund("pending", 4_000, state=PENDING))
        assert uow.refunded_fen("O1") == CASH
        with pytest.raises(RefundExceedsCashPaid):
            uow.add_refund(make.refund("one-fen-too-many", 1))
        assert uow.refunded_fen("O1") == CASH
        assert len(uow.refunds_of_order("O1")) == 2


def test_a_single_refund_over_the_cash_paid_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        with pytest.raises(RefundExceedsCashPaid):
            uow.add_refund(make.refund("k", CASH + 1))
        assert uow.refunds_of_order("O1") == []


def test_a_failed_refund_frees_its_amount(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("first", CASH))
        uow.set_refund_state("first", FAILED)
        assert uow.refunded_fen("O1") == 0
        assert uow.add_refund(make.refund("retry-new-key", CASH)) is True
        assert uow.refunded_fen("O1") == CASH


def test_reactivating_a_failed_refund_over_the_cap_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("failed", 5_000, state=FAILED))
        uow.add_refund(make.refund("paid", 6_000, state=PAID))
        for state in (PENDING, PAID):
            with pytest.raises(RefundExceedsCashPaid):
                uow.set_refund_state("failed", state)
        assert [r.state for r in uow.refunds_of_order("O1")] == [FAILED, PAID]
        # Within the cap it may come back: the paid one failed after all.
        uow.set_refund_state("paid", FAILED)
        uow.set_refund_state("failed", PENDING)
        assert uow.refunded_fen("O1") == 5_000


def test_moving_pending_to_paid_at_the_cap_is_allowed(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("k", CASH))
        uow.set_refund_state("k", PAID)
        assert [r.state for r in uow.refunds_of_order("O1")] == [PAID]
        assert uow.refunded_fen("O1") == CASH


def test_set_state_of_an_unknown_refund_is_not_found(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.set_refund_state("nope", PAID)


def test_refund_must_name_its_tickets_order(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.upsert_order(make.order("O2"))
        # Ticket T20261124-0001 belongs to O1: booking its refund on O2 would dodge O1's cap.
        with pytest.raises(NotFound):
            uow.add_refund(make.refund("k", 100, order_id="O2"))
        with pytest.raises(NotFound):
            uow.add_refund(make.refund("k", 100, ticket_no="T20991231-0001"))
        assert uow.refunds_of_order("O2") == []


def test_the_cap_is_per_order(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        first = make.seed_ticket(uow)
        uow.upsert_order(make.order("O2"))
        uow.add_ticket(make.ticket("T20261124-0002", first.customer_id, "O2"))
        uow.add_refund(make.refund("a", CASH))
        uow.add_refund(make.refund("b", CASH, ticket_no="T20261124-0002", order_id="O2"))
        assert (uow.refunded_fen("O1"), uow.refunded_fen("O2")) == (CASH, CASH)


_operation = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 6_000), st.sampled_from(list(RefundState))),
    st.tuples(st.just("set"), st.integers(0, 9), st.sampled_from(list(RefundState))),
)


@settings(
    max_examples=40,
    deadline=None,
    # one store for all examples: each example works on an order of its own
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=st.lists(_operation, max_size=12))
def test_ledger_never_exceeds_cash_paid_whatever_the_sequence(
    store: Store, make: Make, operations: list[tuple[str, int, RefundState]]
) -> None:
    with store.unit_of_work() as uow:
        _, customer = make.seed(uow)
        order_id = f"P{uow.next_ticket_no(make.order().paid_at.date())}"
        uow.upsert_order(make.order(order_id))
        ticket = make.ticket(f"T-{order_id}", customer.customer_id, order_id)
        uow.add_ticket(ticket)
        model: dict[str, tuple[int, RefundState]] = {}  # what the ledger should hold
        for n, (op, value, state) in enumerate(operations):
            counted = sum(a for a, s in model.values() if s is not FAILED)
            if op == "add":
                key, amount = f"{order_id}-{n}", value
                other = counted
            else:
                keys = sorted(model)
                if not keys:
                    continue
                key = keys[value % len(keys)]
                amount = model[key][0]
                other = counted - (amount if model[key][1] is not FAILED else 0)
            allowed = state is FAILED or other + amount <= CASH
            try:
                if op == "add":
                    uow.add_refund(
                        make.refund(key, amount, ticket.ticket_no, order_id, state=state)
                    )
                else:
                    uow.set_refund_state(key, state)
            except RefundExceedsCashPaid:
                assert not allowed
            else:
                assert allowed
                model[key] = (amount, state)
            assert uow.refunded_fen(order_id) <= CASH
            assert uow.refunded_fen(order_id) == sum(
                a for a, s in model.values() if s is not FAILED
            )
