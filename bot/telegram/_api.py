"""The Bot API calls every turn makes, sent as plain JSON through python-telegram-bot.

`Bot.send_message` builds a `Message` object from Telegram's answer and serialises a keyboard
object for the request: four fifths of the call's cost on our side, for an answer of which only the
message id is used. These calls go through `Bot.do_api_request` instead, which is still the
library's request path: the same transport, rate limiter, error mapping (BadRequest, Forbidden,
RetryAfter...) and timeouts.
"""

from __future__ import annotations

import warnings
from typing import Any

from telegram import Bot
from telegram.warnings import PTBUserWarning

# do_api_request warns when a typed method exists for the endpoint; here that is the point
_TYPED_METHOD_WARNING = r"Please use 'Bot\.(sendMessage|editMessageReplyMarkup)' instead"


def quiet_typed_method_warning() -> None:
    """Silence the library's advice to use the typed methods for the calls of this module."""
    warnings.filterwarnings("ignore", _TYPED_METHOD_WARNING, PTBUserWarning)


async def send_text(
    bot: Bot, chat_id: int, text: str, markup: dict[str, Any] | None = None, **extra: Any
) -> int:
    """sendMessage; returns the new message's id. `extra`: other sendMessage parameters."""
    params: dict[str, Any] = {"chat_id": chat_id, "text": text, **extra}
    if markup is not None:
        params["reply_markup"] = markup
    result = await bot.do_api_request("sendMessage", api_kwargs=params)
    return int(result["message_id"])


async def remove_inline_keyboard(bot: Bot, chat_id: int, message_id: int) -> None:
    """editMessageReplyMarkup without a markup: the message's buttons go away."""
    await bot.do_api_request(
        "editMessageReplyMarkup", api_kwargs={"chat_id": chat_id, "message_id": message_id}
    )
