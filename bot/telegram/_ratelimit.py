"""Flood control per chat: a 429 for one chat pauses that chat, not the whole bot.

python-telegram-bot's AIORateLimiter keeps Telegram's overall and per-group rates, and on a 429
(RetryAfter) it stops *every* request for retry_after. Telegram answers 429 mostly for one chat
(too many messages to it); waiting everywhere then holds up every other customer. Here a 429 for a
request that names a chat pauses that chat's requests only; a 429 for a request without a chat
(getUpdates, answerCallbackQuery...) is the bot-wide limit and pauses everything, as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

log = logging.getLogger(__name__)

Result = bool | dict[str, Any] | list[dict[str, Any]]


class PerChatRateLimiter(AIORateLimiter):
    """AIORateLimiter whose RetryAfter waits apply to the chat that was refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resume_at: dict[str, float] = {}  # chat -> loop time its requests may go again

    def paused(self, chat_id: int | str) -> float:
        """Seconds until this chat's requests go again (0: not paused)."""
        loop = asyncio.get_running_loop()
        return max(self._resume_at.get(str(chat_id), 0.0) - loop.time(), 0.0)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        chat_id = data.get("chat_id")
        if chat_id is None:  # no chat named: Telegram's bot-wide limit, PTB's handling
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        key = str(chat_id)
        group: int | str | bool = False
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)
        if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str):
            group = chat_id
        retries = rate_limit_args or self._max_retries
        loop = asyncio.get_running_loop()
        for attempt in range(retries + 1):
            wait = self._resume_at.get(key, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self._resume_at.pop(key, None)  # the pause is over: forget it
            try:
                return await self._run_request(
                    chat=True,
                    group=group,
                    allow_paid_broadcast=bool(data.get("allow_paid_broadcast", False)),
                    callback=callback,
                    args=args,
                    kwargs=kwargs,
                )
            except RetryAfter as exc:
                if attempt == retries:
                    log.warning("chat %s: still rate limited after %d retries", key, retries)
                    raise
                pause = exc.retry_after
                seconds = pause if isinstance(pause, int | float) else pause.total_seconds()
                self._resume_at[key] = max(
                    self._resume_at.get(key, 0.0), loop.time() + seconds + 0.1
                )
                log.info("chat %s rate limited: its messages wait %.1f s", key, seconds)
        raise AssertionError("unreachable")  # the last attempt returns or raises
