"""Store contract: the agent desk's cases, the agent-chat messages of a case, agents' names, and
the conversation lookups the desk needs (a customer's chats, the chats standing in one state)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from bot.store import Conversation, ConversationKey, DeskCase, NotFound, Store, StoreError

if TYPE_CHECKING:
    from conftest import Make

from tests.store.conftest import NOW

CHAT = -1001234567890
ALICE = ConversationKey("telegram", "1001")
GUEST = ConversationKey("telegram", "3003")


def _case(**changes: object) -> DeskCase:
    fields: dict[str, object] = {"reason": "customer_asked", "opened_at": NOW, "updated_at": NOW}
    fields.update(changes)
    return DeskCase(**fields)  # type: ignore[arg-type]


def test_a_case_round_trips_with_every_field(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        case = uow.add_case(
            _case(
                ticket_no=ticket.ticket_no,
                customer_id=ticket.customer_id,
                conversation=ALICE,
                chat_id=CHAT,
                thread_id=77,
                card_message_id=1234,
                card_due=False,
                joined_by=9001,
                handoff_at=NOW + timedelta(minutes=1),
            )
        )
    assert case.case_id is not None
    with store.unit_of_work() as uow:
        got = uow.case(case.case_id)
        assert got == case
        assert got is not None and got.handoff_at is not None
        assert got.handoff_at.utcoffset() == timedelta(0)  # moments come back in UTC
        assert uow.case_of_ticket(ticket.ticket_no) == case
        assert uow.case_in_thread(CHAT, 77) == case
        assert uow.case_in_thread(CHAT, 78) is None
        assert uow.case_in_thread(-1, 77) is None
        assert uow.case(case.case_id + 1) is None


def test_update_writes_every_field_and_refuses_an_unknown_case(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        case = uow.add_case(_case(ticket_no=ticket.ticket_no, customer_id=ticket.customer_id))
    changed = dataclasses.replace(
        case,
        reason="appeal",
        conversation=ALICE,
        chat_id=CHAT,
        thread_id=5,
        card_message_id=6,
        card_due=False,
        joined_by=9002,
        handoff_at=NOW,
        updated_at=NOW + timedelta(hours=1),
    )
    with store.unit_of_work() as uow:
        assert uow.update_case(changed) == changed
    with store.unit_of_work() as uow:
        assert uow.case_of_ticket(ticket.ticket_no) == changed
        with pytest.raises(NotFound):
            uow.update_case(dataclasses.replace(changed, case_id=999))
        with pytest.raises(ValueError):
            uow.add_case(changed)  # already has an id


def test_one_case_per_ticket_and_per_customer_without_a_ticket(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        customer = ticket.customer_id
        uow.add_case(_case(ticket_no=ticket.ticket_no, customer_id=customer))
        linked = uow.add_case(_case(customer_id=customer, conversation=ALICE))
        guest = uow.add_case(_case(conversation=GUEST))
    for second in (
        _case(ticket_no=ticket.ticket_no, customer_id=customer),
        _case(customer_id=customer, conversation=GUEST),
        _case(conversation=GUEST),
    ):
        with pytest.raises(StoreError), store.unit_of_work() as uow:
            uow.add_case(second)
    with store.unit_of_work() as uow:
        assert uow.case_without_ticket(customer, GUEST) == linked  # by customer once linked
        assert uow.case_without_ticket(None, GUEST) == guest  # by conversation before
        assert uow.case_without_ticket(None, ALICE) is None
        assert uow.case_without_ticket(customer + 1, ALICE) is None


def test_a_conversations_messages_go_to_its_latest_handoff(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        older = uow.add_case(_case(ticket_no=ticket.ticket_no, conversation=ALICE, handoff_at=NOW))
        newer = uow.add_case(_case(conversation=ALICE, handoff_at=NOW + timedelta(seconds=1)))
        uow.add_case(_case(conversation=GUEST))  # never handed off
    with store.unit_of_work() as uow:
        assert uow.latest_case_of_conversation(ALICE) == newer
        assert uow.latest_case_of_conversation(GUEST) is None
        uow.update_case(dataclasses.replace(older, handoff_at=NOW + timedelta(seconds=2)))
        assert uow.latest_case_of_conversation(ALICE) == dataclasses.replace(
            older, handoff_at=NOW + timedelta(seconds=2)
        )


def test_messages_of_a_case_and_cards_due(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.add_case(_case(conversation=ALICE, card_due=False))
        second = uow.add_case(_case(conversation=GUEST))
        assert first.case_id is not None and second.case_id is not None
        uow.link_message(CHAT, 10, first.case_id)
        uow.link_message(CHAT, 11, first.case_id)
        uow.link_message(CHAT, 11, second.case_id)  # the newest case wins
    with store.unit_of_work() as uow:
        assert uow.case_of_message(CHAT, 10) == first
        assert uow.case_of_message(CHAT, 11) == second
        assert uow.case_of_message(CHAT, 12) is None
        assert uow.case_of_message(-1, 10) is None
        assert uow.cases_due() == [second]
        with pytest.raises(StoreError):
            uow.link_message(CHAT, 13, 999)  # no such case


def test_agents_names_are_remembered_newest_first(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.agent_names() == {}
        uow.remember_agent(9001, "王五")
        uow.remember_agent(9002, "赵六")
        uow.remember_agent(9001, "王五 (夜班)")
    with store.unit_of_work() as uow:
        assert uow.agent_names() == {9001: "王五 (夜班)", 9002: "赵六"}


def test_a_customers_conversations_and_the_conversations_in_a_state(store: Store) -> None:
    with store.unit_of_work() as uow:
        customer = uow.upsert_customer("+8613800138000", "张三")
        cid = customer.customer_id
        uow.save_conversation(
            Conversation(ALICE, "handoff", "with_agent", customer_id=cid, updated_at=NOW)
        )
        phone = ConversationKey("telegram", "1002")
        uow.save_conversation(
            Conversation(
                phone, "menu", "main", customer_id=cid, updated_at=NOW + timedelta(minutes=5)
            )
        )
        uow.save_conversation(Conversation(GUEST, "handoff", "with_agent", updated_at=NOW))
    with store.unit_of_work() as uow:
        assert [c.key for c in uow.conversations_of_customer(cid)] == [phone, ALICE]
        assert uow.conversations_of_customer(cid + 1) == []
        assert [c.key for c in uow.conversations_in("handoff", "with_agent")] == [ALICE, GUEST]
        assert uow.conversations_in("menu", "nowhere") == []
