"""Store contract: what a team's desk keeps (issue 15): a case's log of notes and messages, who is
on duty and who was assigned last, blocked chats, and ratings of ended tickets for the reports."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.store import Block, CaseEntry, ConversationKey, DeskCase, Rating, Store

if TYPE_CHECKING:
    from conftest import Make

from tests.store.conftest import NOW

ALICE = ConversationKey("telegram", "1001")


def test_a_cases_log_keeps_its_lines_in_order(store: Store) -> None:
    with store.unit_of_work() as uow:
        case = uow.add_case(DeskCase(reason="customer_asked", opened_at=NOW, updated_at=NOW))
        assert case.case_id is not None
        first = uow.add_case_entry(CaseEntry(case.case_id, NOW, "agent:9001", "note", "上月也退过"))
        uow.add_case_entry(
            CaseEntry(case.case_id, NOW + timedelta(seconds=1), "customer", "from_customer", "hi")
        )
    assert first.entry_id is not None
    with store.unit_of_work() as uow:
        got = uow.case_entries(case.case_id)
        assert [(e.kind, e.text) for e in got] == [("note", "上月也退过"), ("from_customer", "hi")]
        assert got[0] == first
        assert uow.case_entries(case.case_id + 1) == []


def test_agents_on_duty_come_round_in_order_of_their_last_assignment(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.remember_agent(9003, "钱七")  # known, never on duty
        uow.set_on_duty(9001, "王五", True)
        uow.set_on_duty(9002, "赵六", True)
        assert uow.agents_on_duty() == [9001, 9002]
        uow.mark_assigned(9001, NOW)
        assert uow.agents_on_duty() == [9002, 9001]
        uow.mark_assigned(9002, NOW + timedelta(minutes=1))
        assert uow.agents_on_duty() == [9001, 9002]
        uow.set_on_duty(9001, "王五", False)
        assert uow.agents_on_duty() == [9002]
        assert uow.agent_names() == {9001: "王五", 9002: "赵六", 9003: "钱七"}


def test_a_block_is_kept_replaced_and_lifted(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.blocked(ALICE) is None
        uow.block(Block(ALICE, "骚扰", "agent:9001", NOW))
        uow.block(Block(ALICE, "辱骂客服", "agent:9002", NOW + timedelta(hours=1)))
    with store.unit_of_work() as uow:
        assert uow.blocked(ALICE) == Block(
            ALICE, "辱骂客服", "agent:9002", NOW + timedelta(hours=1)
        )
        assert uow.blocked(ConversationKey("telegram", "2002")) is None
        assert uow.unblock(ALICE) is True
        assert uow.unblock(ALICE) is False
        assert uow.blocked(ALICE) is None


def test_a_ticket_is_rated_once_and_ratings_are_read_by_period(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        rating = Rating(ticket.ticket_no, 4, NOW, "快")
        assert uow.add_rating(rating) is True
        assert uow.add_rating(Rating(ticket.ticket_no, 1, NOW + timedelta(hours=1))) is False
    with store.unit_of_work() as uow:
        assert uow.rating(ticket.ticket_no) == rating
        assert uow.rating("T19990101-0001") is None
        assert uow.ratings_between(NOW, NOW + timedelta(seconds=1)) == [rating]
        assert uow.ratings_between(NOW - timedelta(days=1), NOW) == []  # the end is excluded
