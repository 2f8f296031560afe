"""The store's work off the event loop: every unit of work of the adapter runs in a thread
(`asyncio.to_thread`), so a slow or locked database holds up the turn that waits for it and no
other chat. A turn the database was too busy for (StoreBusy) is tried again with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final, ParamSpec, TypeVar

from bot.store import Lease, Store, StoreBusy

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# pauses between attempts of a turn that met a busy database; after the last, the customer gets
# the apology (with SQLite's 5 s busy timeout: about 25 s of trying in all)
BUSY_RETRY_DELAYS: Final = (0.1, 0.3, 1.0, 3.0)
# threads running the store's work (the event loop's default executor, set at start): each holds
# at most one pooled connection, and so does each lease held across awaits (outbox recipients at
# once, one per job, polling), so that the PostgreSQL pool (max 16) is never waited on forever
STORE_THREADS: Final = 6


def use_store_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Run `asyncio.to_thread` work of this loop on STORE_THREADS threads (once per loop)."""
    from concurrent.futures import ThreadPoolExecutor

    if getattr(loop, "_store_threads", False):
        return
    loop.set_default_executor(ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="store"))
    loop._store_threads = True  # type: ignore[attr-defined]


async def retrying(
    delays: Sequence[float], fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`fn` in a thread; on StoreBusy again after each of `delays`, then the error goes up."""
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except StoreBusy as exc:
            if delay is None:
                raise
            log.info("database busy (attempt %d), again in %.1f s: %s", attempt, delay, exc)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@asynccontextmanager
async def leased(store: Store, name: str) -> AsyncIterator[Lease | None]:
    """`store.lease(name)` entered and left in threads, held across the awaits in between."""
    manager = store.lease(name)
    lease = await asyncio.to_thread(manager.__enter__)
    try:
        yield lease
    except BaseException as exc:
        if not await asyncio.to_thread(manager.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)
