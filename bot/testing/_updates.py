"""Raw Bot API update JSON, as Telegram would post it to the bot."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from bot.testing._chats import BOT_USER, User

if TYPE_CHECKING:
    from bot.testing._transport import FakeTelegram

DEMO_PHONE = "+8613800138000"  # the phone of the demo orders' customer 张三


class Updates:
    """Builds the update JSON of what users do, dated by `now` (a clock's `now`, or a fixed time).

    Given the fake transport `tg`, the users' messages take their ids from the same per-chat
    sequence as the bot's, and the files they send become files `tg` knows (getFile answers
    their size; sendPhoto refuses a document's id)."""

    def __init__(
        self,
        now: Callable[[], datetime] | datetime | None = None,
        *,
        first_id: int = 5000,
        tg: FakeTelegram | None = None,
    ) -> None:
        self._now: Callable[[], datetime]
        if isinstance(now, datetime):
            fixed = now
            self._now = lambda: fixed
        else:
            self._now = now or (lambda: datetime.now(UTC))
        self._tg = tg
        self._update_ids = itertools.count(first_id)
        self._message_ids = itertools.count(1)

    def next_id(self) -> int:
        """A fresh update_id."""
        return next(self._update_ids)

    def _date(self) -> int:
        return int(self._now().timestamp())

    def _new_message_id(self, chat_id: int) -> int:
        if self._tg is not None:
            return self._tg.new_message_id(chat_id)
        return next(self._message_ids)

    # -- messages ---------------------------------------------------------------------------

    def message(
        self,
        user: User,
        chat: dict[str, Any] | None = None,
        *,
        thread: int | None = None,
        reply_to: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A message from `user` in `chat` (default: their private chat with the bot), in the
        forum topic `thread`, replying to the bot's message `reply_to`; `fields` are the rest."""
        chat = chat or user.private_chat()
        message: dict[str, Any] = {
            "message_id": self._new_message_id(int(chat["id"])),
            "date": self._date(),
            "chat": chat,
            "from": user.as_dict(),
        }
        if thread is not None:
            message.update(_in_topic(chat, thread))
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to,
                "date": 0,
                "chat": chat,
                "from": BOT_USER,
                "text": "…",
            }
        message.update(fields)
        return {"update_id": self.next_id(), "message": message}

    def text(
        self, user: User, text: str, chat: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """A plain text message (no entities: see `command`)."""
        return self.message(user, chat, text=text, **kw)

    def command(
        self, user: User, command: str, chat: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """A command as a client sends it: "start", "/approve 91.67" → its text with a
        bot_command entity over the command word."""
        text = command if command.startswith("/") else f"/{command}"
        word = text.split(maxsplit=1)[0] if text.strip() else "/"
        entity = {"type": "bot_command", "offset": 0, "length": len(word)}
        return self.message(user, chat, text=text, entities=[entity], **kw)

    def edited(self, user: User, text: str, message_id: int = 1) -> dict[str, Any]:
        """An edit of an earlier text message."""
        update = self.text(user, text, message_id=message_id, edit_date=self._date())
        return {"update_id": update["update_id"], "edited_message": update["message"]}

    def origin(self, original: User) -> dict[str, Any]:
        """The `forward_origin` of a message forwarded from `original` an hour after it."""
        return {"type": "user", "date": self._date() - 3600, "sender_user": original.as_dict()}

    def forwarded(self, user: User, original: User, **fields: Any) -> dict[str, Any]:
        """A message `user` forwards from `original` (`fields`: its text, contact...)."""
        return self.message(user, forward_origin=self.origin(original), **fields)

    def contact(
        self,
        user: User,
        phone: str = DEMO_PHONE,
        *,
        owner: int | Literal["self"] | None = "self",
        first_name: str = "张三",
        **fields: Any,
    ) -> dict[str, Any]:
        """A shared contact: `owner` is whose Telegram account it is ("self": the sender's, as
        the share-phone button sends; None: a contact without an account)."""
        contact: dict[str, Any] = {"phone_number": phone.lstrip("+"), "first_name": first_name}
        owner_id = user.id if owner == "self" else owner
        if owner_id is not None:
            contact["user_id"] = owner_id
        return self.message(user, contact=contact, **fields)

    def photo(
        self,
        user: User,
        file_id: str,
        size: int = 150_000,
        *,
        caption: str | None = None,
        album: str | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """A photo as Telegram sends it, in three sizes (the bot keeps the largest, `file_id`)."""
        sizes = [
            (f"{file_id}-s", f"{file_id}-us", 90, 160, 2_000),
            (file_id, f"u-{file_id}", 1080, 1920, size),
            (f"{file_id}-m", f"{file_id}-um", 320, 568, 20_000),
        ]
        photo = [
            {"file_id": i, "file_unique_id": u, "width": w, "height": h, "file_size": s}
            for i, u, w, h, s in sizes
        ]
        if self._tg is not None:
            for i, _, _, _, s in sizes:
                self._tg.add_file(i, kind="photo", size=s)
        return self.message(user, photo=photo, **_extras(caption, album), **kw)

    def document(
        self,
        user: User,
        file_id: str,
        file_name: str = "evidence.pdf",
        mime: str | None = "application/pdf",
        size: int = 100_000,
        *,
        caption: str | None = None,
        album: str | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """A file sent as a document (whatever its MIME type: Telegram keeps it a document)."""
        document: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_name": file_name,
            "file_size": size,
        }
        if mime:
            document["mime_type"] = mime
        if self._tg is not None:
            self._tg.add_file(file_id, kind="document", size=size, mime=mime)
        return self.message(user, document=document, **_extras(caption, album), **kw)

    # -- presses and the rest -----------------------------------------------------------------

    def press(
        self,
        user: User,
        data: str,
        message_id: int = 1,
        *,
        chat: dict[str, Any] | None = None,
        thread: int | None = None,
        text: str = "…",
    ) -> dict[str, Any]:
        """A callback query: `user` presses a button with `data` under the bot's message
        `message_id` (showing `text`) in `chat`, in forum topic `thread`."""
        update_id = self.next_id()
        chat = chat or user.private_chat()
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": self._date(),
            "chat": chat,
            "from": BOT_USER,
            "text": text,
        }
        if thread is not None:
            message.update(_in_topic(chat, thread))
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"cq{update_id}",
                "from": user.as_dict(),
                "chat_instance": f"ci{chat['id']}",
                "data": data,
                "message": message,
            },
        }

    def unparsable(self, user: User) -> dict[str, Any]:
        """A message python-telegram-bot cannot parse: a poll without its required fields."""
        return self.message(user, poll={"id": "p1"})


def _in_topic(chat: dict[str, Any], thread: int) -> dict[str, Any]:
    """The fields of a message in a forum topic: Telegram shows every message of a topic as a
    reply to the topic's opening message."""
    opening = {
        "message_id": thread,
        "date": 0,
        "chat": chat,
        "message_thread_id": thread,
        "forum_topic_created": {"name": "…", "icon_color": 7322096},
    }
    return {"message_thread_id": thread, "is_topic_message": True, "reply_to_message": opening}


def _extras(caption: str | None, album: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if caption:
        fields["caption"] = caption
    if album is not None:
        fields["media_group_id"] = album
    return fields
