"""The process's heap made cheap for Python's cycle collector while a worker serves.

A worker imports python-telegram-bot, tornado, pydantic, psycopg and the bot's flows, catalogs
and policy: hundreds of thousands of objects that live as long as the process. CPython collects
its oldest generation every so often and walks all of them: measured in a benchmark worker
(`benchmarks/bench.py --workers`), 35-65 ms with the process stopped, a few times per run, which
every update in hand at that moment waits out. `gc.freeze()` moves what exists before serving into
a permanent generation the collector no longer walks (collect first, then freeze, as the standard
library's documentation advises); garbage made while serving is collected as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_startup_heap() -> Iterator[int]:
    """Collect what start-up left behind, take every object alive now out of the collector's
    walks while the block runs (it yields how many), and give them back after it (a process
    that serves again, as the tests' do, does not keep its old objects for ever)."""
    gc.collect()
    gc.freeze()
    try:
        yield gc.get_freeze_count()
    finally:
        gc.unfreeze()
