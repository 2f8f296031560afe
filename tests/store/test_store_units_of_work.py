"""Store contract: units of work commit together or not at all; data survives a reopen."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from bot.domain import RefundState, TicketStatus
from bot.store import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    Identity,
    OutboxMessage,
    Store,
)

if TYPE_CHECKING:
    from conftest import Make, OpenStore

KEY = ConversationKey("telegram", "1001")
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


class TurnFailed(Exception):
    pass


def test_leaving_the_block_commits(store: Store, make: Make, open_store: OpenStore) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
    with open_store().unit_of_work() as uow:  # another connection sees it: it is committed
        assert uow.ticket("T20261124-0001") is not None


def test_an_exception_rolls_back_everything_the_turn_wrote(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        _, customer = make.seed(uow)
    with pytest.raises(TurnFailed), store.unit_of_work() as uow:
        ticket_no = uow.next_ticket_no(make.order().paid_at.date())
        uow.add_ticket(make.ticket(ticket_no, customer.customer_id))
        uow.add_event(make.event(ticket_no))
        uow.add_evidence(make.evidence(ticket_no))
        uow.add_refund(make.refund("k", 100, ticket_no=ticket_no))
        uow.save_conversation(Conversation(key=KEY, flow="apply", state="done"))
        uow.mark_processed("tg:update:1", make.order().paid_at)
        uow.enqueue(OutboxMessage(channel="telegram", recipient="1001", payload={"t": "x"}))
        uow.link_identity(customer.customer_id, Identity("telegram", "1001"))
        uow.upsert_order(make.order("O2"))
        raise TurnFailed
    with store.unit_of_work() as uow:
        assert uow.ticket(ticket_no) is None
        assert uow.events_of(ticket_no) == []
        assert uow.evidence_of(ticket_no) == []
        assert uow.refunds_of_order("O1") == []
        assert uow.conversation(KEY) is None
        assert uow.pending_outbox() == []
        assert uow.customer_by_identity(Identity("telegram", "1001")) is None
        assert uow.order("O2") is None
        # The number allocation rolled back with the rest: the same number is handed out again.
        assert uow.next_ticket_no(make.order().paid_at.date()) == ticket_no
        assert uow.mark_processed("tg:update:1", make.order().paid_at) is True


def test_a_caught_store_error_leaves_the_rest_of_the_turn_intact(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        first = make.seed_ticket(uow)
        uow.add_refund(make.refund("k", 10_000))
        try:
            uow.add_refund(make.refund("k2", 1))
        except Exception:
            uow.add_event(make.event(first.ticket_no, kind="note", data={"refused": True}))
    with store.unit_of_work() as uow:
        assert [e.kind for e in uow.events_of(first.ticket_no)] == ["note"]
        assert uow.refunded_fen("O1") == 10_000


def test_a_unit_of_work_cannot_be_used_after_its_block(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.mark_processed("a", AT)
    with pytest.raises(RuntimeError, match="ended"):
        uow.mark_processed("b", AT)


def test_units_of_work_do_not_nest_in_one_thread(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.mark_processed("outer", AT)
        with pytest.raises(RuntimeError, match="already open in this thread"), store.unit_of_work():
            pass  # pragma: no cover
    with store.unit_of_work() as uow:
        assert uow.mark_processed("outer", AT) is False  # the outer one still committed


def test_two_stores_reading_the_same_version_one_wins(open_store: OpenStore, make: Make) -> None:
    a, b = open_store(), open_store()
    with a.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.save_conversation(Conversation(key=KEY, flow="apply", state="start"))
    with a.unit_of_work() as uow:
        conv_a, ticket_a = uow.conversation(KEY), uow.ticket(ticket.ticket_no)
    with b.unit_of_work() as uow:
        conv_b, ticket_b = uow.conversation(KEY), uow.ticket(ticket.ticket_no)
    assert conv_a is not None
    assert conv_b is not None
    assert ticket_a is not None
    assert ticket_b is not None
    with a.unit_of_work() as uow:
        uow.save_conversation(dataclasses.replace(conv_a, state="from_a"))
        uow.update_ticket(ticket_a.model_copy(update={"status": TicketStatus.IN_REVIEW}))
    # a stale conversation fails its unit of work (from the save, or the commit at the latest)
    with pytest.raises(ConcurrentUpdate), b.unit_of_work() as uow:
        uow.save_conversation(dataclasses.replace(conv_b, state="from_b"))
    with b.unit_of_work() as uow:
        with pytest.raises(ConcurrentUpdate):
            uow.update_ticket(ticket_b.model_copy(update={"status": TicketStatus.WITHDRAWN}))
        stored = uow.conversation(KEY)
        assert stored is not None
        assert stored.state == "from_a"


def test_reopening_keeps_everything(open_store: OpenStore, make: Make) -> None:
    first = open_store()
    with first.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        customer = uow.customer(ticket.customer_id)
        uow.link_identity(ticket.customer_id, Identity("telegram", "1001"))
        event = uow.add_event(make.event(ticket.ticket_no))
        evidence = uow.add_evidence(make.evidence(ticket.ticket_no))
        uow.add_refund(make.refund("k", 500, state=RefundState.PAID))
        conversation = uow.save_conversation(Conversation(key=KEY, flow="apply", state="x"))
        message = uow.enqueue(OutboxMessage(channel="telegram", recipient="1", payload={}))
        uow.mark_processed("tg:update:9", ticket.created_at)
        number = uow.next_ticket_no(ticket.created_at.date())
    first.close()
    with open_store().unit_of_work() as uow:
        assert uow.order("O1") == make.order()
        assert uow.customer_by_identity(Identity("telegram", "1001")) == customer
        assert uow.ticket(ticket.ticket_no) == ticket
        assert uow.events_of(ticket.ticket_no) == [event]
        assert uow.evidence_of(ticket.ticket_no) == [evidence]
        assert uow.refunded_fen("O1") == 500
        assert uow.conversation(KEY) == conversation
        assert uow.pending_outbox() == [message]
        assert uow.mark_processed("tg:update:9", ticket.created_at) is False
        assert uow.next_ticket_no(ticket.created_at.date()) > number
        assert uow.open_tickets() == [ticket]
        assert uow.tickets_of_customer(ticket.customer_id) == [ticket]


def test_a_closed_store_refuses_new_units_of_work(store: Store) -> None:
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"), store.unit_of_work():
        pass  # pragma: no cover
