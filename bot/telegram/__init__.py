"""The python-telegram-bot adapter: Telegram updates in, engine turns, outbox messages out.

Thin on purpose: it parses updates into `Inbound` events, authorises presses, limits floods,
collects albums (their parts wait in the store, so any worker may hand one over), lets the engine
run the turn (which commits the dedupe key, the state and the replies together) and renders the
outbox as Telegram messages."""

from bot.telegram._adapter import TelegramAdapter
from bot.telegram._application import (
    ALLOWED_UPDATES,
    BotApplication,
    TelegramBot,
    build_bot,
    run,
    secret_problems,
    webhook_options,
)
from bot.telegram._commands import COMMAND_MENU, register_commands
from bot.telegram._desk import TelegramDesk
from bot.telegram._files import EvidenceDownloads, bytes_match
from bot.telegram._flood import IncomingLimit, Verdict
from bot.telegram._outbox import Outbox
from bot.telegram._parse import CHANNEL, Incoming, conversation_key, document_kind, parse_update
from bot.telegram._processor import ChatLocks, PerChatUpdateProcessor
from bot.telegram._render import Outgoing, keyboard, render, split_text

__all__ = [
    "ALLOWED_UPDATES",
    "CHANNEL",
    "COMMAND_MENU",
    "BotApplication",
    "ChatLocks",
    "EvidenceDownloads",
    "Incoming",
    "IncomingLimit",
    "Outbox",
    "Outgoing",
    "PerChatUpdateProcessor",
    "TelegramAdapter",
    "TelegramBot",
    "TelegramDesk",
    "Verdict",
    "build_bot",
    "bytes_match",
    "conversation_key",
    "document_kind",
    "keyboard",
    "parse_update",
    "register_commands",
    "render",
    "run",
    "secret_problems",
    "split_text",
    "webhook_options",
]
