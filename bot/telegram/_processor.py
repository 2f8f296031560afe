"""Updates of one chat in order, different chats concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class ChatLocks:
    """One asyncio lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        """Hold the chat's lock; waiters get it in the order they asked (asyncio locks are FIFO)."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._users[chat_id] = self._users.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id], self._locks[chat_id]

    def busy(self, chat_id: int) -> bool:
        """Whether someone holds or waits for the chat's lock."""
        return chat_id in self._locks

    async def try_take(self, chat_id: int) -> bool:
        """Hold the chat's lock now if nobody holds or waits for it (never waits); False
        otherwise. Give it back with `give_back`."""
        if self.busy(chat_id):
            return False
        lock = self._locks[chat_id] = asyncio.Lock()
        self._users[chat_id] = 1
        await lock.acquire()  # a new lock: taken at once
        return True

    def give_back(self, chat_id: int) -> None:
        """Let go of a lock taken by `try_take`."""
        self._locks[chat_id].release()
        self._users[chat_id] -= 1
        if self._users[chat_id] == 0:
            del self._users[chat_id], self._locks[chat_id]

    def __len__(self) -> int:
        return len(self._locks)


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """PTB's concurrent processing with a lock per chat: one chat's updates never overtake each
    other (a button press must not be handled before the message that showed the button), while
    a slow chat does not hold up the others."""

    def __init__(self, max_concurrent_updates: int, locks: ChatLocks | None = None) -> None:
        super().__init__(max_concurrent_updates)
        self.locks = locks or ChatLocks()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        async with self.locks.hold(chat.id):
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up: locks are made on demand."""

    async def shutdown(self) -> None:
        """Nothing to free."""
