"""`/compensate`: CPL Art. 53 interest and costs on an approved ticket, in their own ledger."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.domain import CompensationKind, RefundState, Ticket
from bot.handoff import Action, Desk, Done
from tests.engine.conftest import Chat, apply_for
from tests.factories import at
from tests.handoff.test_desk_service import GROUP, WANG, desk_app

_updates = itertools.count(1)


def act(desk: Desk, action: Action, ref: str, arg: str = "") -> Done:
    return desk.act(WANG, GROUP, action, ref, arg, f"compensation-test:{next(_updates)}")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = desk_app(tmp_path, FixedClock(at("2026-11-24 10:00")))
    yield application
    application.close()


@pytest.fixture
def approved(app: App) -> Ticket:
    chat = Chat(app)
    chat.link()
    ticket = apply_for(chat, "力健", "服务未达标", "商家失联", photos=1)
    assert act(Desk(app, "telegram"), Action.APPROVE, ticket.ticket_no).ok
    return ticket


def test_compensation_is_a_ledger_row_of_its_own_paid_with_the_refund(
    app: App, approved: Ticket
) -> None:
    desk = Desk(app, "telegram")
    done = act(desk, Action.COMPENSATE, approved.ticket_no, "12.50 interest")
    assert done.ok, done.text
    with app.store.unit_of_work() as uow:
        (row,) = uow.compensations_of_ticket(approved.ticket_no)
        refunded = uow.refunded_fen(approved.order_id)
        events = [e.kind for e in uow.events_of(approved.ticket_no)]
    assert (row.kind, row.amount_fen, row.state) == (CompensationKind.INTEREST, 1250, "pending")
    assert row.actor == "agent:9001"
    assert refunded == approved.quote.amount_fen  # the price refund is untouched
    assert events[-1] == "compensate_interest"
    assert act(desk, Action.REFUNDED, approved.ticket_no).ok
    with app.store.unit_of_work() as uow:
        (row,) = uow.compensations_of_ticket(approved.ticket_no)
    assert row.state is RefundState.PAID


@pytest.mark.parametrize(
    ("arg", "text"),
    [
        ("12.50", "格式:/compensate"),
        ("interest 12.50", "格式:/compensate"),
        ("12.50 fees", "格式:/compensate"),
        ("-1 costs", "格式:/compensate"),
        ("100.01 interest", "最多 ¥100.00"),
    ],
)
def test_a_wrong_compensation_changes_nothing(
    app: App, approved: Ticket, arg: str, text: str
) -> None:
    done = act(Desk(app, "telegram"), Action.COMPENSATE, approved.ticket_no, arg)
    assert not done.ok and text in done.text
    with app.store.unit_of_work() as uow:
        assert uow.compensations_of_ticket(approved.ticket_no) == []
        assert uow.events_of(approved.ticket_no)[-1].kind == "approve"


def _card_text(app: App, desk: Desk, ticket_no: str) -> str:
    opened = act(desk, Action.OPEN, ticket_no)
    assert opened.ok and opened.case is not None
    card = desk.card(opened.case)
    assert card is not None
    return card.text


def test_the_case_card_shows_the_art_53_compensation_apart_from_the_refund(
    app: App, approved: Ticket
) -> None:
    desk = Desk(app, "telegram")
    before = _card_text(app, desk, approved.ticket_no)
    assert "⚖️ 第五十三条另付(与退款分开):利息 ¥0.00/¥100.00 · 费用 ¥0.00/¥300.00" in before
    assert act(desk, Action.COMPENSATE, approved.ticket_no, "12.50 interest").ok
    assert act(desk, Action.COMPENSATE, approved.ticket_no, "30 costs").ok
    after = _card_text(app, desk, approved.ticket_no)
    assert "⚖️ 第五十三条另付(与退款分开):利息 ¥12.50/¥100.00 · 费用 ¥30.00/¥300.00" in after
    assert f"已批 ¥{approved.quote.amount_fen / 100:,.2f}" in after  # the refund is unchanged


def test_no_compensation_line_where_art_53_is_not_the_basis(app: App) -> None:
    chat = Chat(app)
    chat.link()
    ticket = apply_for(chat, "星河视频", "误购/重复购买", "买错了")
    assert "第五十三条另付" not in _card_text(app, Desk(app, "telegram"), ticket.ticket_no)
