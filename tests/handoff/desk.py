"""The agent desk offline: the fake Bot API of tests/telegram/offline.py taught what the desk
calls (forum topics, copies, files re-sent by file_id), agents in the supergroup, and a customer
who files a ticket. Both sides go through python-telegram-bot from raw update JSON."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.domain import RefundEntry, Ticket, TicketEvent
from bot.store import DeskCase
from tests.telegram.offline import (
    ALICE,
    NOW,
    Failure,
    FakeTelegram,
    Harness,
    User,
    inline_buttons,
    telegram_config,
)

GROUP_ID = -100123
FORUM = {"id": GROUP_ID, "type": "supergroup", "title": "小年卡盟客服台", "is_forum": True}
PLAIN_GROUP = {"id": GROUP_ID, "type": "supergroup", "title": "小年卡盟客服台"}
OTHER_GROUP = {"id": -100999, "type": "supergroup", "title": "闲聊群"}
AGENT1 = User(9001, first_name="王五", language_code="zh-hans")
AGENT2 = User(9002, first_name="赵六", language_code="zh-hans")
STRANGER = User(7007, first_name="路人甲", language_code="zh-hans")  # in the group, no agent
NOT_A_FORUM = Failure(400, "Bad Request: the chat is not a forum")
_MEDIA = ("sendPhoto", "sendDocument", "sendVideo")


def desk_config(tmp_path: Path, **overrides: Any) -> Config:
    """The Telegram tests' config with an agent desk: the group and two agents."""
    desk = {"chat_id": GROUP_ID, "agent_ids": [AGENT1.id, AGENT2.id]}
    return telegram_config(tmp_path, agent_desk=desk, **overrides)


class DeskTelegram(FakeTelegram):
    """The fake Bot API, answering the desk's methods as Telegram does."""

    def __init__(self) -> None:
        super().__init__()
        # topic ids are message ids in Telegram: one counter, apart from the base fake's
        self._desk_ids = itertools.count(50_000)
        self.topics: list[dict[str, Any]] = []

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "createForumTopic":
            topic = {
                "message_thread_id": next(self._desk_ids),
                "name": params["name"],
                "icon_color": 7322096,
            }
            self.topics.append(topic)
            return topic
        if name == "copyMessage":
            return {"message_id": next(self._desk_ids)}
        if name in _MEDIA:
            return {
                "message_id": next(self._desk_ids),
                "date": int(NOW.timestamp()),
                "chat": {"id": params["chat_id"], "type": "supergroup", "title": "客服台"},
            }
        return super()._result(name, params)

    # -- what the tests read -----------------------------------------------------------------

    def to(self, chat_id: int, *methods: str) -> list[dict[str, Any]]:
        """Calls sending something to a chat (by default every kind of message), oldest first."""
        wanted = methods or ("sendMessage", "copyMessage", *_MEDIA)
        return [
            c.params for c in self.calls if c.method in wanted and c.params["chat_id"] == chat_id
        ]

    def desk_texts(self, thread: int | None = None) -> list[str]:
        """Texts sent to the agent group (into one topic)."""
        return [
            str(p["text"])
            for p in self.to(GROUP_ID, "sendMessage")
            if thread is None or p.get("message_thread_id") == thread
        ]

    def answers(self) -> list[str]:
        return [str(p.get("text", "")) for p in self.of("answerCallbackQuery")]

    def result_of(self, params: dict[str, Any]) -> int:
        """The message id the fake gave a recorded call."""
        for call in self.calls:
            if call.params is params:
                return int(call.result["message_id"])
        raise AssertionError("no such call")


class Agents:
    """Agents (and strangers) in the desk group: they type, send photos and press buttons."""

    def __init__(self, harness: Harness, tg: DeskTelegram) -> None:
        self.h = harness
        self.tg = tg
        self.up = harness.updates

    @staticmethod
    def in_topic(thread: int, chat: dict[str, Any] = FORUM) -> dict[str, Any]:
        """A topic's message as Telegram shows it: a reply to the message that opened the topic."""
        opening = {
            "message_id": thread,
            "date": 0,
            "chat": chat,
            "message_thread_id": thread,
            "forum_topic_created": {"name": "…", "icon_color": 7322096},
        }
        return {"message_thread_id": thread, "is_topic_message": True, "reply_to_message": opening}

    @staticmethod
    def replying_to(message_id: int, chat: dict[str, Any] = PLAIN_GROUP) -> dict[str, Any]:
        return {
            "reply_to_message": {
                "message_id": message_id,
                "date": 0,
                "chat": chat,
                "from": {"id": 123456, "is_bot": True, "first_name": "bot"},
                "text": "…",
            }
        }

    async def say(
        self,
        agent: User,
        text: str,
        thread: int | None = None,
        chat: dict[str, Any] = FORUM,
        **where: Any,
    ) -> None:
        """A message (or a /command with its arguments) in the group, in a topic if given."""
        fields: dict[str, Any] = {"text": text, **where}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if thread is not None:
            fields.update(self.in_topic(thread, chat))
        await self.h.process(self.up.message(agent, chat=chat, **fields))

    async def photo(self, agent: User, name: str, thread: int, caption: str = "") -> None:
        data = self.up.photo(agent, name)
        message = data["message"]
        message["chat"] = FORUM
        message.update(self.in_topic(thread))
        if caption:
            message["caption"] = caption
        await self.h.process(data)

    def button(self, label: str, chat_id: int = GROUP_ID) -> tuple[str, int]:
        """(callback data, message id) of the newest message in the chat with such a button."""
        for params in reversed(self.tg.to(chat_id, "sendMessage")):
            for text, data in inline_buttons(params):
                if label in text:
                    return data, self.tg.result_of(params)
        raise AssertionError(f"no desk button {label!r}")

    async def press(
        self, agent: User, label: str, chat: dict[str, Any] = FORUM, data: str | None = None
    ) -> None:
        """Press the newest desk button with `label` (or send `data` as if it were one)."""
        found, message_id = self.button(label)
        await self.h.process(self.up.press(agent, data or found, message_id=message_id, chat=chat))


async def file_ticket(h: Harness, customer: User = ALICE) -> str:
    """The customer links and files a "benefits missing" request with one photo: its number."""
    await h.to_evidence(customer)
    await h.process(h.updates.photo(customer, "evidence-1"))
    for label in ("Done uploading", "Full amount", "Submit"):
        await h.press(customer, label)
    (ticket,) = tickets(h)
    return ticket.ticket_no


def tickets(h: Harness) -> list[Ticket]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.open_tickets()


def ticket(h: Harness, ticket_no: str) -> Ticket:
    with h.engine_app.store.unit_of_work() as uow:
        found = uow.ticket(ticket_no)
    assert found is not None
    return found


def events(h: Harness, ticket_no: str) -> list[TicketEvent]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.events_of(ticket_no)


def ledger(h: Harness, order_id: str = "V1") -> list[RefundEntry]:
    with h.engine_app.store.unit_of_work() as uow:
        return uow.refunds_of_order(order_id)


def case_of(h: Harness, ticket_no: str) -> DeskCase:
    with h.engine_app.store.unit_of_work() as uow:
        case = uow.case_of_ticket(ticket_no)
    assert case is not None
    return case
