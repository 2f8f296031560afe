"""Who is who in the fake Telegram: the bot, users and the chats they write in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOKEN = "123456:TEST-token"
BOT_ID = 123456
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "小年卡盟退款助手",
    "username": "xiaonian_refund_bot",
}
DESK_TITLE = "小年卡盟客服台"


@dataclass(frozen=True)
class User:
    """A Telegram user (a customer, an agent); `language_code` is what their client reports."""

    id: int
    first_name: str = "张三"
    language_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def private_chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


def supergroup(chat_id: int, title: str = DESK_TITLE, *, forum: bool = True) -> dict[str, Any]:
    """A supergroup's chat object; with `forum`, one with topics (like the agent desk)."""
    chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
    if forum:
        chat["is_forum"] = True
    return chat


def chat_of(chat_id: int) -> dict[str, Any]:
    """The chat Telegram puts in a message the bot sent: private for a user, else a forum."""
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "客户"}
    return supergroup(chat_id)
