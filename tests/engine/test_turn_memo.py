"""A turn validates the stored quote once, and again only when the stored data is replaced."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.dialogue._common import stored_quote
from bot.domain import Quote
from bot.engine import Inbound, Kind, Turn
from tests.engine.conftest import Chat


def test_the_stored_quote_is_validated_once_per_turn_and_again_when_replaced(
    chat: Chat, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat.link()
    chat.press("申请退款")
    chat.press("星河")
    chat.press("七天无理由")
    assert chat.state == "apply.precheck"
    conv = app.engine.conversation(chat.key)
    assert conv is not None
    validated: list[object] = []
    validate = Quote.model_validate

    def counting(raw: object) -> Quote:
        validated.append(raw)
        return validate(raw)

    monkeypatch.setattr(Quote, "model_validate", counting)
    with app.store.unit_of_work() as uow:
        turn = Turn(
            state=conv.state,
            conv=conv,
            uow=uow,
            event=Inbound(chat.key, Kind.TEXT, "memo-test"),
            now=app.clock.now(),
            services=app.engine.services,
        )
        first = stored_quote(turn)
        assert stored_quote(turn) is first
        assert len(validated) == 1
        # a new pre-check replaces the stored dict: the memo must not answer with the old quote
        turn.data["quote"] = first.model_copy(update={"amount_fen": 1}).model_dump(mode="json")
        assert stored_quote(turn).amount_fen == 1
        assert len(validated) == 2
