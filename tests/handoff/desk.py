"""The agent desk offline: agents in the supergroup, and a customer who files a ticket. Both
sides go through python-telegram-bot from raw update JSON, on bot.testing's fake Bot API (which
answers the desk's calls: forum topics, copies, files re-sent by file_id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import Config
from bot.domain import RefundEntry, Ticket, TicketEvent
from bot.store import DeskCase
from bot.testing import Failure, FakeTelegram, User, inline_buttons
from tests.telegram.support import ALICE, ShopHarness, telegram_config

GROUP_ID = -100123
FORUM = {"id": GROUP_ID, "type": "supergroup", "title": "小年卡盟客服台", "is_forum": True}
PLAIN_GROUP = {"id": GROUP_ID, "type": "supergroup", "title": "小年卡盟客服台"}
OTHER_GROUP = {"id": -100999, "type": "supergroup", "title": "闲聊群"}
AGENT1 = User(9001, first_name="王五", language_code="zh-hans")
AGENT2 = User(9002, first_name="赵六", language_code="zh-hans")
STRANGER = User(7007, first_name="路人甲", language_code="zh-hans")  # in the group, no agent
NOT_A_FORUM = Failure(400, "Bad Request: the chat is not a forum")


def desk_config(tmp_path: Path, **overrides: Any) -> Config:
    """The Telegram tests' config with an agent desk: the group and two agents."""
    desk = {"chat_id": GROUP_ID, "agent_ids": [AGENT1.id, AGENT2.id]}
    return telegram_config(tmp_path, agent_desk=desk, **overrides)


class Agents:
    """Agents (and strangers) in the desk group: they type, send photos and press buttons."""

    def __init__(self, harness: ShopHarness, tg: FakeTelegram) -> None:
        self.h = harness
        self.tg = tg
        self.up = harness.updates

    async def say(
        self,
        agent: User,
        text: str,
        thread: int | None = None,
        chat: dict[str, Any] = FORUM,
        reply_to: int | None = None,
    ) -> None:
        """A message (or a /command with its arguments) in the group, in a topic if given,
        replying to the bot's message `reply_to` if given."""
        write = self.up.command if text.startswith("/") else self.up.text
        await self.h.process(write(agent, text, chat, thread=thread, reply_to=reply_to))

    async def photo(self, agent: User, name: str, thread: int, caption: str = "") -> None:
        data = self.up.photo(agent, name, caption=caption or None, chat=FORUM, thread=thread)
        await self.h.process(data)

    def button(self, label: str, chat_id: int = GROUP_ID) -> tuple[str, int]:
        """(callback data, message id) of the newest message in the chat with such a button."""
        for params in reversed(self.tg.to(chat_id, "sendMessage")):
            for text, data in inline_buttons(params.get("reply_markup")):
                if label in text:
                    return data, self.tg.result_of(params)
        raise AssertionError(f"no desk button {label!r}")

    async def press(
        self, agent: User, label: str, chat: dict[str, Any] = FORUM, data: str | None = None
    ) -> None:
        """Press the newest desk button with `label` (or send `data` as if it were one)."""
        found, message_id = self.button(label)
        await self.h.process(self.up.press(agent, data or found, message_id=message_id, chat=chat))


async def file_ticket(h: ShopHarness, customer: User = ALICE) -> str:
    """The customer links and files a "benefits missing" request with one photo: its number."""
    await h.to_evidence(customer)
    await h.process(h.updates.photo(customer, "evidence-1"))
    for label in ("Done uploading", "Full amount", "Submit"):
        await h.press(customer, label)
    (ticket,) = tickets(h)
    return ticket.ticket_no


def tickets(h: ShopHarness) -> list[Ticket]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.open_tickets()


def ticket(h: ShopHarness, ticket_no: str) -> Ticket:
    with h.engine_app.store.unit_of_work() as uow:
        found = uow.ticket(ticket_no)
    assert found is not None
    return found


def events(h: ShopHarness, ticket_no: str) -> list[TicketEvent]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.events_of(ticket_no)


def ledger(h: ShopHarness, order_id: str = "V1") -> list[RefundEntry]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.refunds_of_order(order_id)


def case_of(h: ShopHarness, ticket_no: str) -> DeskCase:
    with h.engine_app.store.unit_of_work() as uow:
        case = uow.case_of_ticket(ticket_no)
    assert case is not None
    return case
