"""Two bot processes on one SQLite file, handling the same chats at the same time: no turn lost or
applied twice, nothing half-written, and no "database is locked" reaching a customer."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from bot.i18n import default_catalog
from bot.testing import Updates
from tests.reliability.conftest import Spawn
from tests.reliability.support import (
    chat_of,
    customers,
    delivery_problems,
    interleaved,
    new_database,
    problems,
    received,
    scalar,
)

CUSTOMERS = 8
SHARED = 0.2  # share of the first process's updates that Telegram also hands to the second one


def scripts(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both processes walk every customer through the whole application (whoever is first takes
    a step; a press on a prompt the other already answered is stale). Some updates reach both
    (a webhook retry landing on the other instance), and the second one hears some chatter."""
    rng = random.Random(seed)
    people = customers(CUSTOMERS)
    first = interleaved([c.apply_flow(Updates(first_id=100_000 + 1000 * c.n)) for c in people])
    second = interleaved([c.apply_flow(Updates(first_id=200_000 + 1000 * c.n)) for c in people])
    chatter = Updates(first_id=300_000)
    mixed: list[dict[str, Any]] = []
    for update in second:
        mixed.append(update)
        if rng.random() < SHARED:
            mixed.append(rng.choice(first))  # the very same update: same id, same content
        if rng.random() < 0.1:
            user = rng.choice(people).user
            mixed.append(rng.choice([chatter.command(user, "help"), chatter.text(user, "在吗?")]))
    return first, mixed


def test_two_processes_on_the_same_chats_lose_and_double_nothing(
    tmp_path: Path, spawn: Spawn
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    db = tmp_path / "bot.sqlite3"
    new_database(db, customers(CUSTOMERS))
    first, second = scripts(seed)
    bots = [
        spawn(db, script, name=name, gate=True) for name, script in (("a", first), ("b", second))
    ]
    for bot in bots:
        bot.wait_ready()
    for bot in bots:
        bot.go()
    for bot in bots:
        bot.finish()

    note = f"(scripts from seed {seed})"
    acked = bots[0].acked + bots[1].acked
    assert sorted(set(acked)) == sorted({u["update_id"] for u in first + second}), note
    assert problems(db, acked, in_order=False) == [], note
    assert delivery_problems(db, complete=True) == [], note

    # every distinct update is exactly one turn of its chat: the conversation's version counts
    # its saved turns, so a lost turn (overwritten by the other process) or a doubled one shows
    updates_of = Counter(chat_of(u) for u in {u["update_id"]: u for u in first + second}.values())
    for chat, count in updates_of.items():
        version = scalar(db, "SELECT version FROM conversations WHERE user_id = ?", str(chat))
        assert version == count, f"chat {chat}: {version} turns for {count} updates {note}"

    # the store was busy, never broken: no apology went out, no error was logged
    catalog = default_catalog()
    apologies = {catalog.text(locale, "telegram.error") for locale in catalog.locales}
    texts = [m["text"] for m in received(db)]
    assert not apologies & set(texts), note
    for bot in bots:
        for word in ("OperationalError", "database is locked", "Traceback", "ERROR"):
            assert word not in bot.log, f"{bot.name}: {word} in its log {note}\n{bot.log}"
    # and the two really did work on the same chats: tickets were filed, by whichever came first
    assert scalar(db, "SELECT count(*) FROM tickets") >= 1, note
