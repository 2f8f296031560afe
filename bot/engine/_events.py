"""Transport-neutral inbound events and outbound messages. Telegram, the console and the dialogue
test runner all translate to and from these; the engine knows nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain import EvidenceKind, SentAs
from bot.engine._effects import Effect
from bot.store import ConversationKey, Identity


class Kind(StrEnum):
    TEXT = "text"
    BUTTON = "button"  # a press of a button the engine rendered: `token` identifies it
    COMMAND = "command"  # /start, /refund, /status, /agent, /cancel, /language, /help
    FILE = "file"
    CONTACT = "contact"
    TIMER = "timer"  # the reminder for an abandoned flow
    SYSTEM = "system"  # fired by the agent desk or the CLI: `command` is the trigger


@dataclass(frozen=True, slots=True)
class FileInfo:
    kind: EvidenceKind
    file_id: str
    file_unique_id: str
    size_bytes: int
    mime_type: str | None = None
    file_name: str | None = None
    caption: str | None = None
    sha256: str | None = None
    # whether the bytes are what `kind` says: None when nobody looked (downloads turned off)
    content_ok: bool | None = None
    sent_as: SentAs | None = None  # how the messenger carried it (a photo, a document...)


@dataclass(frozen=True, slots=True)
class ContactInfo:
    phone: str
    user_id: int | None  # Telegram fills it when the contact is a Telegram user
    first_name: str = ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a customer did. `dedupe_key` makes the same event take effect once."""

    key: ConversationKey
    kind: Kind
    dedupe_key: str
    sender_id: int | None = None  # the sender's user id in the channel (None in the console)
    text: str = ""
    token: str = ""  # button token
    command: str = ""  # command name without the slash
    files: tuple[FileInfo, ...] = ()  # an album arrives as several files in one event
    contact: ContactInfo | None = None
    language_code: str | None = None  # the client's language, used until the customer chooses
    forwarded: bool = False

    @property
    def sender(self) -> Identity | None:
        """Who sent it, as the store links identities to customers."""
        if self.sender_id is None:
            return None
        return Identity(self.key.channel, str(self.sender_id))


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    token: str = ""  # opaque, short (≤ 64 bytes); empty for the contact-request button
    request_contact: bool = False


@dataclass(frozen=True, slots=True)
class Copy:
    """A message of another chat to pass on as it is (an agent's photo, file or sticker): the
    reply's text then signs it. How a signature and the message's own caption fit together is
    the transport's business (Telegram limits captions; another transport may not)."""

    from_chat_id: int
    message_id: int
    caption: str | None = None  # the message's own caption
    captionable: bool = True  # False: a sticker, a location...: signed in a message after it


@dataclass(frozen=True, slots=True)
class Reply:
    """One outgoing message: the catalog key it was rendered from, and what the customer sees."""

    key: str
    text: str
    buttons: tuple[Button, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    copy: Copy | None = None

    def to_payload(self) -> dict[str, Any]:
        """JSON for the outbox."""
        payload: dict[str, Any] = {
            "key": self.key,
            "text": self.text,
            "buttons": [
                {"label": b.label, "token": b.token, "request_contact": b.request_contact}
                for b in self.buttons
            ],
        }
        if self.copy is not None:
            c = self.copy
            payload["copy"] = {
                "from_chat_id": c.from_chat_id,
                "message_id": c.message_id,
                "caption": c.caption,
                "captionable": c.captionable,
            }
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Reply:
        copy = payload.get("copy")
        return cls(
            key=payload["key"],
            text=payload["text"],
            buttons=tuple(
                Button(b["label"], b["token"], b.get("request_contact", False))
                for b in payload.get("buttons", ())
            ),
            # rows written before captions were the transport's carry the whole caption as text
            copy=Copy(
                int(copy["from_chat_id"]),
                int(copy["message_id"]),
                copy.get("caption"),
                bool(copy.get("captionable", True)),
            )
            if copy
            else None,
        )


@dataclass(slots=True)
class TurnResult:
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    duplicate: bool = False  # the event was already processed: nothing happened
    button_answer: str | None = None  # short text for the pressed button (stale, forged...)
    flow: str = ""
    state: str = ""
    fired: tuple[str, str, str, str] | None = None  # (flow, source, trigger, dest) for coverage
    at: datetime | None = None
