"""Telegram updates in, transport-neutral `Inbound` events out. No IO, no state."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any

from telegram import Chat, Message, Update

from bot.domain import EvidenceKind, SentAs
from bot.engine import ContactInfo, FileInfo, Inbound, Kind
from bot.store import ConversationKey

CHANNEL = "telegram"
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s|$)")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One parsed update: the engine event and what the adapter needs besides it."""

    inbound: Inbound
    update_id: int
    chat_id: int
    user_id: int
    media_group_id: str | None = None  # a part of an album: collected before the engine sees it
    is_press: bool = False  # a callback query: must be answered whatever happens
    message_ids: tuple[int, ...] = ()  # the messages (an album's parts): the desk copies them
    name: str = ""  # the sender's name in Telegram (a case of an unlinked customer shows it)


def conversation_key(chat_id: int) -> ConversationKey:
    return ConversationKey(CHANNEL, str(chat_id))


def dedupe_key(update_id: int) -> str:
    return f"tg:{update_id}"


def split_command(text: str | None) -> tuple[str, str] | None:
    """('approve', '91.67') for '/approve@bot 91.67'; None when the text is no command."""
    match = _COMMAND.match(text or "")
    if match is None:
        return None
    return match.group(1).lower(), (text or "")[match.end() :].strip()


def parse_update(update: Update) -> Incoming | None:
    """The customer's event in a private chat, or None for anything the bot stays silent on."""
    query = update.callback_query
    if query is not None:
        message = query.message
        if message is None or message.chat.type != Chat.PRIVATE or query.from_user.is_bot:
            return None  # inline-mode presses and group presses are not customer conversations
        presser = query.from_user
        press = Inbound(
            conversation_key(message.chat.id),
            Kind.BUTTON,
            dedupe_key(update.update_id),
            sender_id=presser.id,
            token=query.data or "",
            language_code=presser.language_code,
        )
        return Incoming(press, update.update_id, message.chat.id, presser.id, is_press=True)
    message = update.message
    if message is None or message.chat.type != Chat.PRIVATE:
        return None  # edits, channel posts, groups: the agent desk is another adapter
    user = message.from_user
    if user is None or user.is_bot:
        return None
    inbound = _message_event(update.update_id, message, user.id, user.language_code)
    if inbound is None:
        return None
    return Incoming(
        inbound,
        update.update_id,
        message.chat.id,
        user.id,
        media_group_id=message.media_group_id if inbound.files else None,
        message_ids=(message.message_id,),
        name=user.full_name,
    )


def _message_event(
    update_id: int, message: Message, sender_id: int, language_code: str | None
) -> Inbound | None:
    def event(kind: Kind, **fields: Any) -> Inbound:
        return Inbound(
            conversation_key(message.chat.id),
            kind,
            dedupe_key(update_id),
            sender_id=sender_id,
            language_code=language_code,
            forwarded=message.forward_origin is not None,
            **fields,
        )

    if message.contact is not None:
        contact = ContactInfo(
            phone=message.contact.phone_number,
            user_id=message.contact.user_id,
            first_name=message.contact.first_name,
        )
        return event(Kind.CONTACT, contact=contact)
    files = message_files(message)
    if files:
        return event(Kind.FILE, files=files)
    if message.text is not None:
        command = split_command(message.text)
        if command is not None:
            return event(Kind.COMMAND, command=command[0])
        return event(Kind.TEXT, text=message.text)
    if is_service_message(message):
        return None
    # a sticker, a location, a poll...: no answer to the prompt; the engine re-prompts
    return event(Kind.TEXT)


def message_files(message: Message) -> tuple[FileInfo, ...]:
    """The evidence a message carries: the largest photo size, a document, a video, a recording."""
    caption = message.caption
    if message.photo:
        # Telegram sends every size of a photo; the largest is the one worth reviewing
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return (
            FileInfo(
                kind=EvidenceKind.PHOTO,
                file_id=largest.file_id,
                file_unique_id=largest.file_unique_id,
                size_bytes=largest.file_size or 0,
                mime_type="image/jpeg",  # Telegram re-encodes photos as JPEG
                caption=caption,
                sent_as=SentAs.PHOTO,
            ),
        )
    document = message.document
    if document is not None:
        mime = document.mime_type or _guess_mime(document.file_name)
        return (
            FileInfo(
                kind=document_kind(mime),
                file_id=document.file_id,
                file_unique_id=document.file_unique_id,
                size_bytes=document.file_size or 0,
                mime_type=mime,
                file_name=document.file_name,
                caption=caption,
                sent_as=SentAs.DOCUMENT,
            ),
        )
    for media, kind, sent_as in (
        (message.video, EvidenceKind.VIDEO, SentAs.VIDEO),
        (message.video_note, EvidenceKind.VIDEO, SentAs.VIDEO_NOTE),
        # e.g. a recorded call with the merchant
        (message.audio, EvidenceKind.DOCUMENT, SentAs.AUDIO),
        (message.voice, EvidenceKind.DOCUMENT, SentAs.VOICE),
    ):
        if media is not None:
            return (
                FileInfo(
                    kind=kind,
                    file_id=media.file_id,
                    file_unique_id=media.file_unique_id,
                    size_bytes=media.file_size or 0,
                    mime_type=getattr(media, "mime_type", None),
                    file_name=getattr(media, "file_name", None),
                    caption=caption,
                    sent_as=sent_as,
                ),
            )
    return ()


def document_kind(mime: str | None) -> EvidenceKind:
    """A document's evidence kind by its MIME type: PDF, image, video, else a plain document."""
    if mime == "application/pdf":
        return EvidenceKind.PDF
    if mime is not None and mime.startswith("image/"):
        # a screenshot sent "as a file" (uncompressed) is still a photo of the evidence
        return EvidenceKind.PHOTO
    if mime is not None and mime.startswith("video/"):
        return EvidenceKind.VIDEO
    return EvidenceKind.DOCUMENT


def _guess_mime(file_name: str | None) -> str | None:
    return mimetypes.guess_type(file_name)[0] if file_name else None


def is_service_message(message: Message) -> bool:
    """Pins, chat photo changes, topics opened, members joining...: nobody is talking."""
    return bool(
        message.pinned_message
        or message.new_chat_photo
        or message.delete_chat_photo
        or message.message_auto_delete_timer_changed
        or message.write_access_allowed
        # in the agent desk's group
        or message.forum_topic_created
        or message.forum_topic_edited
        or message.forum_topic_closed
        or message.forum_topic_reopened
        or message.new_chat_members
        or message.left_chat_member
    )
