"""Bad input in every state: whatever arrives that is not an answer, the conversation stays where
it is, explains itself (or, with a person on the chat, stays quiet) and writes nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.app import App, load_dialogue
from bot.domain import EvidenceKind
from bot.engine import ContactInfo, Kind, RelayedToAgent, TurnResult
from tests.engine.conftest import REACH, Chat, file_info, reach

FLOWS, _ = load_dialogue()
QUIET = "handoff.with_agent"
# states that take typed text as an answer (an order number, digits, an amount, a note)
TEXT_ANSWERS = {
    "start.ask_order_no": "start.error.order_no_format",
    "start.ask_last4": "start.error.last4_format",
    "apply.amount": "amount.error.format",
    "supplement.upload": "supplement.note_saved",
    "appeal.upload": "supplement.note_saved",
    # typed text on a long list is a search: nothing matches, so the whole list again
    "apply.choose_order": "apply.search_none",
    "status.list": "status.search_none",
}
# states where any typed text is the answer, and the conversation moves on (with this reply)
TEXT_ENDS = {"rating.comment": "care.rating.thanks"}
# states that take files (a video is refused there: photos and PDFs only)
FILE_ANSWERS = {"apply.evidence", "supplement.upload", "appeal.upload"}
# states that take a contact (someone else's is refused there)
CONTACT_ANSWERS = {"start.welcome", "start.locked"}


def prompt_key(where: str) -> str:
    flow, state = where.split(".")
    prompt = FLOWS.state(flow, state).prompt
    assert prompt is not None
    return prompt


def snapshot(app: App, chat: Chat) -> tuple[object, ...]:
    """Everything a bad input must leave alone: tickets, their events and evidence, refunds."""
    with app.store.unit_of_work() as uow:
        tickets = [t for o in ("V1", "C1", "G1", "Y1", "M1", "X1") for t in uow.tickets_of_order(o)]
        return (
            [t.model_dump() for t in tickets],
            [len(uow.events_of(t.ticket_no)) for t in tickets],
            [len(uow.evidence_of(t.ticket_no)) for t in tickets],
            [uow.refunded_fen(o) for o in ("V1", "C1", "G1", "Y1", "M1", "X1")],
        )


def stale_token(app: App, chat: Chat) -> str:
    """A token of the prompt before the current one (the state re-rendered by /help)."""
    conv = app.engine.conversation(chat.key)
    assert conv is not None
    old = f"{conv.data['menu']['nonce']}.0"
    chat.command("help")
    return old


BadInput = Callable[[App, Chat], TurnResult]
BAD_INPUTS: dict[str, BadInput] = {
    "gibberish": lambda app, chat: chat.type("qwe rty §§ 🙃"),
    "long-text": lambda app, chat: chat.type("我想问一下这个到底怎么回事" * 20),
    "video": lambda app, chat: chat.photo("clip", kind=EvidenceKind.VIDEO),
    "empty-album": lambda app, chat: chat.send(Kind.FILE, files=()),
    "oversized-album": lambda app, chat: chat.send(
        Kind.FILE, files=tuple(file_info(f"big{i}", size=10**9) for i in range(3))
    ),
    "someone-elses-contact": lambda app, chat: chat.send(
        Kind.CONTACT, contact=ContactInfo("+8613900139000", 99)
    ),
    "stale-button": lambda app, chat: chat.send(Kind.BUTTON, token=stale_token(app, chat)),
    "forged-button": lambda app, chat: chat.send(Kind.BUTTON, token="f00bar.1"),
    "unknown-command": lambda app, chat: chat.command("sudo"),
}


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
@pytest.mark.parametrize("where", sorted(REACH))
def test_bad_input_leaves_the_state_and_the_records_alone(
    app: App, chat: Chat, where: str, bad: str
) -> None:
    reach(app, chat, where)
    before = snapshot(app, chat)
    result = BAD_INPUTS[bad](app, chat)
    if where in TEXT_ENDS and bad in ("gibberish", "long-text"):
        assert chat.state == "menu.main"
        assert result.replies[0].key == TEXT_ENDS[where]
        assert snapshot(app, chat) == before
        return
    assert chat.state == where
    assert snapshot(app, chat) == before
    assert not result.duplicate
    if bad in ("stale-button", "forged-button"):
        assert result.button_answer is not None and result.replies == []
        return
    if where == QUIET and bad != "unknown-command":  # a person has the chat: relayed, no reply
        assert result.replies == []
        assert [type(e) for e in result.effects] == [RelayedToAgent]
        return
    assert result.replies, "every input outside a person's chat gets an answer"
    keys = [r.key for r in result.replies]
    assert keys[-1] == prompt_key(where), keys
    assert result.replies[-1].buttons  # the buttons again
    expected = expected_first_key(where, bad)
    assert keys[0] == expected, keys


def expected_first_key(where: str, bad: str) -> str:
    if bad in ("gibberish", "long-text"):
        return TEXT_ANSWERS.get(where, "common.misunderstood")
    if bad in ("video", "oversized-album"):
        if where in FILE_ANSWERS:
            return "evidence.error.type" if bad == "video" else "evidence.error.size"
        return "common.no_file_here"
    if bad == "empty-album":  # nothing to refuse: the checklist again
        return prompt_key(where) if where in FILE_ANSWERS else "common.no_file_here"
    if bad == "someone-elses-contact":
        return (
            "start.error.not_own_contact" if where in CONTACT_ANSWERS else "common.no_contact_here"
        )
    return "common.misunderstood"
