"""Store contract: ticket numbers, tickets (one open per order, versions), evidence, events."""

from __future__ import annotations

import contextlib
import re
import threading
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest

from bot.domain import (
    OPEN_STATUSES,
    EvidenceKind,
    Outcome,
    Priority,
    Reason,
    RefundState,
    SubReason,
    TicketStatus,
)
from bot.store import ConcurrentUpdate, NotFound, OpenTicketExists, Store, StoreError

if TYPE_CHECKING:
    from conftest import Make, OpenStore

DAY = date(2026, 11, 24)
TICKET_NO = re.compile(r"T\d{8}-\d{4,}")


# --- numbers ---------------------------------------------------------------------------------


def test_ticket_numbers_count_per_day_zero_padded(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.next_ticket_no(DAY) == "T20261124-0001"
        assert uow.next_ticket_no(DAY) == "T20261124-0002"
        assert uow.next_ticket_no(date(2026, 11, 25)) == "T20261125-0001"
    with store.unit_of_work() as uow:
        assert uow.next_ticket_no(DAY) == "T20261124-0003"


def test_ticket_numbers_grow_wider_after_9999(store: Store) -> None:
    with store.unit_of_work() as uow:
        numbers = [uow.next_ticket_no(DAY) for _ in range(10_000)]
    assert numbers[9_998] == "T20261124-9999"
    assert numbers[9_999] == "T20261124-10000"
    assert len(set(numbers)) == 10_000


def test_ticket_numbers_are_unique_across_stores_and_threads(open_store: OpenStore) -> None:
    # Each thread has its own store (its own connection), like separate processes would.
    stores = [open_store() for _ in range(4)]
    per_thread = 60
    results: list[list[str]] = [[] for _ in stores]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def hammer(index: int) -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                with stores[index].unit_of_work() as uow:
                    results[index].append(uow.next_ticket_no(DAY))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = [n for chunk in results for n in chunk]
    assert all(TICKET_NO.fullmatch(n) for n in numbers)
    assert len(numbers) == len(set(numbers)) == len(stores) * per_thread
    # No gaps either: every committed allocation used the next number.
    assert sorted(int(n.split("-")[1]) for n in numbers) == list(range(1, len(numbers) + 1))


def test_one_store_shared_by_threads_serialises_units_of_work(store: Store) -> None:
    numbers: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(50):
            with store.unit_of_work() as uow:
                n = uow.next_ticket_no(DAY)
            with lock:
                numbers.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(numbers)) == len(numbers) == 200


# --- tickets -----------------------------------------------------------------------------------


def test_ticket_round_trips_every_field_and_the_quote(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        _, customer = make.seed(uow)
        quote = make.quote(
            reason=Reason.SERVICE_ISSUE,
            sub_reason=SubReason.MERCHANT_UNREACHABLE,
            outcome=Outcome.AUTO_APPROVE,
            priority=Priority.HIGH,
            review_due=None,
        )
        ticket = make.ticket(
            "T20261124-0001",
            customer.customer_id,
            reason=Reason.SERVICE_ISSUE,
            sub_reason=SubReason.MERCHANT_UNREACHABLE,
            status=TicketStatus.APPROVED,
            priority=Priority.HIGH,
            requested_fen=9_167,
            approved_fen=9_000,
            quote=quote,
            review_due=DAY + timedelta(days=1),
            payout_due=DAY + timedelta(days=4),
            appeal_count=1,
            assignee=55501,
        )
        uow.add_ticket(ticket)
    with store.unit_of_work() as uow:
        stored = uow.ticket("T20261124-0001")
    assert stored == ticket
    assert stored is not None
    assert stored.quote == quote
    assert stored.quote.breakdown[1].params == {"coupon": "满减"}
    assert stored.quote.payout_window == (1, 3)
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.updated_at.utcoffset() == timedelta(0)


def test_unknown_ticket_is_none(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.ticket("T20261124-0001") is None
        assert uow.tickets_of_customer(1) == []
        assert uow.tickets_of_order("O1") == []
        assert uow.open_tickets() == []


def test_ticket_for_an_unknown_order_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        customer = uow.upsert_customer("+8613800138000", "张三")
        with pytest.raises(NotFound):
            uow.add_ticket(make.ticket("T20261124-0001", customer.customer_id, "no-such-order"))
        assert uow.ticket("T20261124-0001") is None


def test_second_open_ticket_for_an_order_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        first = make.seed_ticket(uow)
        with pytest.raises(OpenTicketExists):
            uow.add_ticket(make.ticket("T20261124-0002", first.customer_id))
        # The failed insert left the transaction usable and wrote nothing.
        assert uow.ticket("T20261124-0002") is None
        assert [t.ticket_no for t in uow.tickets_of_order("O1")] == ["T20261124-0001"]


def test_a_duplicate_ticket_number_is_an_error_but_not_an_open_ticket(
    store: Store, make: Make
) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow, status=TicketStatus.CLOSED)
        uow.upsert_order(make.order("O2"))
        for order_id in ("O1", "O2"):
            duplicate = ticket.model_copy(update={"order_id": order_id})
            with pytest.raises(StoreError) as raised:
                uow.add_ticket(duplicate)
            assert not isinstance(raised.value, OpenTicketExists)
        assert uow.tickets_of_order("O2") == []


@pytest.mark.parametrize("status", list(TicketStatus))
def test_a_ticket_holds_its_order_exactly_while_open(
    store: Store, make: Make, status: TicketStatus
) -> None:
    with store.unit_of_work() as uow:
        first = make.seed_ticket(uow, status=status)
        second = make.ticket("T20261124-0002", first.customer_id)
        if status in OPEN_STATUSES:
            with pytest.raises(OpenTicketExists):
                uow.add_ticket(second)
        else:
            uow.add_ticket(second)
            assert uow.ticket(second.ticket_no) == second


def test_after_the_first_ticket_closes_a_new_one_is_allowed(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        first = make.seed_ticket(uow)
    with store.unit_of_work() as uow:
        uow.update_ticket(first.model_copy(update={"status": TicketStatus.WITHDRAWN}))
        uow.add_ticket(make.ticket("T20261124-0002", first.customer_id))
    with store.unit_of_work() as uow:
        assert [t.ticket_no for t in uow.open_tickets()] == ["T20261124-0002"]


def test_reopening_a_ticket_while_another_is_open_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        rejected = make.seed_ticket(uow, status=TicketStatus.REJECTED)
        uow.add_ticket(make.ticket("T20261124-0002", rejected.customer_id))
    with store.unit_of_work() as uow:
        with pytest.raises(OpenTicketExists):
            uow.update_ticket(rejected.model_copy(update={"status": TicketStatus.APPEALED}))
        stored = uow.ticket(rejected.ticket_no)
        assert stored is not None
        assert (stored.status, stored.version) == (TicketStatus.REJECTED, 1)


def test_update_ticket_writes_every_mutable_field_and_bumps_the_version(
    store: Store, make: Make
) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
    changed = ticket.model_copy(
        update={
            "reason": Reason.MISTAKEN_PURCHASE,
            "sub_reason": SubReason.DUPLICATE,
            "status": TicketStatus.APPROVED,
            "priority": Priority.FAST,
            "requested_fen": 8_000,
            "approved_fen": 7_500,
            "quote": make.quote(amount_fen=8_000, offers=()),
            "review_due": None,
            "payout_due": DAY + timedelta(days=5),
            "appeal_count": 1,
            "assignee": 4242,
            "updated_at": ticket.updated_at + timedelta(hours=2),
        }
    )
    with store.unit_of_work() as uow:
        returned = uow.update_ticket(changed)
    assert returned == changed.model_copy(update={"version": 2})
    with store.unit_of_work() as uow:
        assert uow.ticket(ticket.ticket_no) == returned
        # The returned ticket is the next "as read" value: it can be updated again.
        again = uow.update_ticket(returned.model_copy(update={"assignee": None}))
    assert again.version == 3


def test_update_with_a_stale_version_is_a_concurrent_update(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
    with store.unit_of_work() as uow:
        uow.update_ticket(ticket.model_copy(update={"status": TicketStatus.IN_REVIEW}))
    with store.unit_of_work() as uow:
        with pytest.raises(ConcurrentUpdate):
            uow.update_ticket(ticket.model_copy(update={"status": TicketStatus.WITHDRAWN}))
        stored = uow.ticket(ticket.ticket_no)
        assert stored is not None
        assert (stored.status, stored.version) == (TicketStatus.IN_REVIEW, 2)


def test_update_of_an_unknown_ticket_is_not_found(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        with pytest.raises(NotFound):
            uow.update_ticket(ticket.model_copy(update={"ticket_no": "T20261124-0099"}))


def test_update_cannot_move_a_ticket_to_another_order(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.upsert_order(make.order("O2"))
        with pytest.raises(ValueError, match="cannot change"):
            uow.update_ticket(ticket.model_copy(update={"order_id": "O2"}))
        assert uow.ticket(ticket.ticket_no) == ticket


def test_tickets_of_customer_and_of_order_newest_first(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        _, customer = make.seed(uow)
        uow.upsert_order(make.order("O2"))
        _, other = make.seed(uow, make.order("O3", phone="+8613900139000"))
        cid = customer.customer_id
        old = make.ticket("T20261120-0001", cid, "O1", status=TicketStatus.CLOSED)
        old = old.model_copy(update={"created_at": old.created_at - timedelta(days=4)})
        uow.add_ticket(old)
        uow.add_ticket(make.ticket("T20261124-0001", cid, "O1"))
        later = make.ticket("T20261124-0002", cid, "O2")
        uow.add_ticket(later.model_copy(update={"created_at": later.created_at + timedelta(1)}))
        uow.add_ticket(make.ticket("T20261124-0003", other.customer_id, "O3"))
        assert [t.ticket_no for t in uow.tickets_of_customer(cid)] == [
            "T20261124-0002",
            "T20261124-0001",
            "T20261120-0001",
        ]
        assert [t.ticket_no for t in uow.tickets_of_order("O1")] == [
            "T20261124-0001",
            "T20261120-0001",
        ]
        assert [t.ticket_no for t in uow.tickets_of_customer(other.customer_id)] == [
            "T20261124-0003"
        ]


def test_open_tickets_by_priority_then_review_due_then_age(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        _, customer = make.seed(uow)
        cid = customer.customer_id
        specs = [
            # (order, priority, review_due offset in days or None, created offset in hours)
            ("A", Priority.NORMAL, 1, 0),
            ("B", Priority.HIGH, 3, 0),
            ("C", Priority.FAST, 2, 0),
            ("D", Priority.HIGH, 1, 5),
            ("E", Priority.NORMAL, None, 0),
            ("F", Priority.NORMAL, 1, -1),
            ("G", Priority.HIGH, 1, 2),
        ]
        for n, (order_id, priority, due, created) in enumerate(specs, start=1):
            uow.upsert_order(make.order(order_id))
            t = make.ticket(
                f"T20261124-{n:04d}",
                cid,
                order_id,
                priority=priority,
                review_due=None if due is None else DAY + timedelta(days=due),
            )
            uow.add_ticket(
                t.model_copy(update={"created_at": t.created_at + timedelta(hours=created)})
            )
        uow.upsert_order(make.order("Z"))
        uow.add_ticket(
            make.ticket(
                "T20261124-0099", cid, "Z", priority=Priority.HIGH, status=TicketStatus.CLOSED
            )
        )
        assert [t.order_id for t in uow.open_tickets()] == ["G", "D", "B", "C", "F", "A", "E"]


# --- evidence and events -------------------------------------------------------------------------


def test_evidence_gets_ids_and_lists_per_ticket_in_order(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        first = uow.add_evidence(make.evidence(ticket.ticket_no))
        second = uow.add_evidence(
            make.evidence(ticket.ticket_no, kind=EvidenceKind.PDF, caption=None, sha256=None)
        )
        loose = uow.add_evidence(make.evidence(None))
    assert first.evidence_id is not None
    assert second.evidence_id is not None
    assert loose.evidence_id is not None
    assert len({first.evidence_id, second.evidence_id, loose.evidence_id}) == 3
    with store.unit_of_work() as uow:
        stored = uow.evidence_of(ticket.ticket_no)
        assert uow.evidence_of("T20991231-0001") == []
    assert stored == [first, second]
    assert stored[0].added_at.utcoffset() == timedelta(0)


def test_evidence_for_an_unknown_ticket_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.add_evidence(make.evidence("T20991231-0001"))


def test_evidence_with_an_id_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        with pytest.raises(ValueError, match="id"):
            uow.add_evidence(make.evidence(ticket.ticket_no, evidence_id=7))


def test_events_form_a_timeline_oldest_first(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        later = uow.add_event(
            make.event(
                ticket.ticket_no,
                at=ticket.created_at + timedelta(hours=1),
                actor="agent:4242",
                kind="status:in_review",
                from_status=TicketStatus.SUBMITTED,
                to_status=TicketStatus.IN_REVIEW,
                data={},
            )
        )
        first = uow.add_event(make.event(ticket.ticket_no))
        same_time = uow.add_event(make.event(ticket.ticket_no, kind="note", to_status=None))
    assert first.event_id is not None
    assert later.event_id is not None
    with store.unit_of_work() as uow:
        events = uow.events_of(ticket.ticket_no)
        assert uow.events_of("T20991231-0001") == []
    assert events == [first, same_time, later]
    assert events[0].data == {"note": "首次提交", "amount_fen": 10_000, "files": ["a", "b"]}
    assert events[0].at.utcoffset() == timedelta(0)


def test_event_for_an_unknown_ticket_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.add_event(make.event("T20991231-0001"))


def test_event_with_an_id_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        with pytest.raises(ValueError, match="id"):
            uow.add_event(make.event(ticket.ticket_no, event_id=3))


def test_history_reads_are_the_three_reads_they_stand_for(store: Store, make: Make) -> None:
    """history_reads (one round trip where the database pipelines) = tickets_of_customer,
    orders_of and refunded_fen, read one by one."""
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.upsert_order(make.order("O2", paid_at=make.order().paid_at + timedelta(days=3)))
        uow.add_ticket(make.ticket("T20261124-0002", ticket.customer_id, "O2"))
        assert uow.add_refund(make.refund("k1", 3_000))
        assert uow.add_refund(make.refund("k2", 500, state=RefundState.FAILED))
        read = uow.history_reads(ticket.customer_id, "O1")
        assert read.tickets == uow.tickets_of_customer(ticket.customer_id)
        assert [t.ticket_no for t in read.tickets] == ["T20261124-0002", "T20261124-0001"]
        assert read.orders == uow.orders_of(ticket.customer_id)
        assert [o.order_id for o in read.orders] == ["O2", "O1"]
        assert read.refunded_fen == uow.refunded_fen("O1") == 3_000
        assert uow.history_reads(999, "O9") == ([], [], 0)


def test_recorded_events_and_attached_evidence_are_stored_in_order(
    store: Store, make: Make
) -> None:
    """record_event / attach_evidence: add_event / add_evidence without the id back (they may
    travel with the next statement): readable in the same unit of work and after it."""
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.record_event(make.event(ticket.ticket_no))
        uow.attach_evidence(make.evidence(ticket.ticket_no))
        uow.record_event(make.event(ticket.ticket_no, kind="note", to_status=None))
        uow.attach_evidence(make.evidence(ticket.ticket_no, kind=EvidenceKind.PDF))
        inside = [e.kind for e in uow.events_of(ticket.ticket_no)]
        assert inside == ["submitted", "note"]
    with store.unit_of_work() as uow:
        events = uow.events_of(ticket.ticket_no)
        evidence = uow.evidence_of(ticket.ticket_no)
    assert [e.kind for e in events] == ["submitted", "note"]
    assert all(e.event_id is not None for e in events)
    assert events[0].data == make.event(ticket.ticket_no).data
    assert [e.kind for e in evidence] == [EvidenceKind.PHOTO, EvidenceKind.PDF]


@pytest.mark.parametrize("what", ["event", "evidence"])
def test_a_recorded_row_of_an_unknown_ticket_fails_its_unit_of_work(
    store: Store, make: Make, what: str
) -> None:
    """NotFound, from the record itself or at the latest from the commit: nothing of the unit
    of work is stored."""
    with pytest.raises(NotFound), store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        if what == "event":
            uow.record_event(make.event("T20991231-0001"))
        else:
            uow.attach_evidence(make.evidence("T20991231-0001"))
    with store.unit_of_work() as uow:
        assert uow.ticket(ticket.ticket_no) is None


def test_a_recorded_row_failing_after_a_caught_error_still_fails_the_unit_of_work(
    store: Store, make: Make
) -> None:
    """A caught store error leaves the unit of work usable; a recorded row that fails later
    fails it whole even when it surfaces in a write whose caller catches it (sent ahead of that
    write's savepoint, it must not roll back to the first error's): nothing is committed."""
    with pytest.raises(StoreError), store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        with pytest.raises(OpenTicketExists):
            uow.add_ticket(make.ticket("T20261124-0002", ticket.customer_id, "O1"))
        uow.upsert_order(make.order("O2"))
        uow.record_event(make.event("T20991231-0001"))  # SQLite: NotFound here
        with contextlib.suppress(NotFound):  # a caller that catches it and goes on
            uow.add_ticket(make.ticket("T20261124-0004", ticket.customer_id, "O2"))
    with store.unit_of_work() as uow:
        assert uow.ticket(ticket.ticket_no) is None
        assert uow.order("O2") is None


def test_a_recorded_row_with_an_id_is_refused(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        with pytest.raises(ValueError, match="id"):
            uow.record_event(make.event(ticket.ticket_no, event_id=3))
        with pytest.raises(ValueError, match="id"):
            uow.attach_evidence(make.evidence(ticket.ticket_no, evidence_id=7))
        assert uow.events_of(ticket.ticket_no) == []


def test_a_new_ticket_reads_back_in_its_unit_of_work_as_any_later_read_finds_it(
    store: Store, make: Make
) -> None:
    with store.unit_of_work() as uow:
        seeded = make.seed_ticket(uow)
        inside = uow.ticket(seeded.ticket_no)
    with store.unit_of_work() as uow:
        later = uow.ticket(seeded.ticket_no)
    assert inside is not None and inside == later
    assert inside.created_at.utcoffset() == later.created_at.utcoffset()  # type: ignore[union-attr]
    assert inside.quote == later.quote  # type: ignore[union-attr]


def test_a_ticket_read_again_in_a_unit_of_work_follows_its_own_writes(
    store: Store, make: Make
) -> None:
    """A unit of work reads a ticket once until it writes it: a new or updated ticket is read
    back as written."""
    with store.unit_of_work() as uow:
        assert uow.ticket("T20261124-0001") is None
        seeded = make.seed_ticket(uow)
        first = uow.ticket(seeded.ticket_no)
        assert first is not None and first.version == seeded.version
        assert uow.ticket(seeded.ticket_no) == first
        moved = uow.update_ticket(first.model_copy(update={"assignee": 7}))
        again = uow.ticket(seeded.ticket_no)
        assert again == moved and again is not None and again.assignee == 7
    with store.unit_of_work() as uow:
        assert uow.ticket(seeded.ticket_no) == moved
