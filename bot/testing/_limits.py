"""What the Bot API refuses, as pure functions over a request's parameters: the limits Telegram
documents (and answers with a 400 when a bot breaks them)."""

from __future__ import annotations

from typing import Any

TEXT_LIMIT = 4096  # UTF-16 code units of a message's text
CAPTION_LIMIT = 1024  # UTF-16 code units of a media caption
CALLBACK_DATA_LIMIT = 64  # bytes of a button's callback_data
ANSWER_LIMIT = 200  # characters of a callback query's answer
INLINE_BUTTONS_LIMIT = 100  # buttons of one inline keyboard
TOPIC_NAME_LIMIT = 128  # characters of a forum topic's name
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bytes a bot may download (getFile)

# what an inline button may do besides carrying callback_data
_BUTTON_ACTIONS = (
    "url",
    "login_url",
    "web_app",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def utf16_length(text: str) -> int:
    """The length Telegram counts: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def refusal(method: str, params: dict[str, Any]) -> str | None:
    """The 400 description Telegram answers to a call that breaks one of its limits, or None."""
    return (
        _text_refusal(method, params) or _caption_refusal(params) or _other_refusal(method, params)
    )


def _text_refusal(method: str, params: dict[str, Any]) -> str | None:
    if method not in ("sendMessage", "editMessageText"):
        return None
    text = str(params.get("text") or "")
    if not text.strip():
        return "Bad Request: message text is empty"
    if utf16_length(text) > TEXT_LIMIT:
        return (
            "Bad Request: message is too long"
            if method == "sendMessage"
            else "Bad Request: MESSAGE_TOO_LONG"
        )
    return None


def _caption_refusal(params: dict[str, Any]) -> str | None:
    media = params.get("media")
    parts = media if isinstance(media, list) else [media] if isinstance(media, dict) else []
    captions = [params.get("caption"), *(m.get("caption") for m in parts if isinstance(m, dict))]
    if any(c is not None and utf16_length(str(c)) > CAPTION_LIMIT for c in captions):
        return "Bad Request: message caption is too long"
    return None


def _other_refusal(method: str, params: dict[str, Any]) -> str | None:
    if method == "answerCallbackQuery" and len(str(params.get("text") or "")) > ANSWER_LIMIT:
        return "Bad Request: MESSAGE_TOO_LONG"
    name = params.get("name") if method in ("createForumTopic", "editForumTopic") else None
    if name is not None and not 1 <= len(str(name)) <= TOPIC_NAME_LIMIT:
        return "Bad Request: TOPIC_NAME_INVALID"
    return keyboard_refusal(params.get("reply_markup"))


def keyboard_refusal(markup: Any) -> str | None:
    """What Telegram says of an inline keyboard it will not show, or None."""
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    buttons = [button for row in rows for button in row]
    if len(buttons) > INLINE_BUTTONS_LIMIT:
        return "Bad Request: REPLY_MARKUP_TOO_LONG"
    for button in buttons:
        if not str(button.get("text", "")).strip():
            return "Bad Request: text buttons are unallowed in the inline keyboard"
        if "callback_data" in button:
            if not 1 <= len(str(button["callback_data"]).encode()) <= CALLBACK_DATA_LIMIT:
                return "Bad Request: BUTTON_DATA_INVALID"
        elif not any(action in button for action in _BUTTON_ACTIONS):
            return "Bad Request: text buttons are unallowed in the inline keyboard"
    return None
