"""A bot process killed with SIGKILL at random moments, again and again: after every restart the
store is intact, every acknowledged update has had its effect, nothing is half-written, and what
was committed for the customers is delivered."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from bot.testing import Updates
from tests.reliability.conftest import Spawn
from tests.reliability.support import (
    SEVEN_DAY,
    BotProcess,
    chat_of,
    customers,
    delivery_problems,
    interleaved,
    new_database,
    pending_outbox,
    problems,
    received,
    scalar,
    sent_at,
)

KILLS = 8
CUSTOMERS = 24
STARTUP_KILLS = 0.25  # share of the kills aimed at the start-up (the outbox left behind is sent)


def random_seed() -> int:
    """RELIABILITY_SEED=<n> replays a run's kill moments; otherwise every run aims elsewhere."""
    return int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(2**32))


def restarted(spawn: Spawn, db: Path, script: list[dict[str, object]], note: str) -> BotProcess:
    """Start a bot on the rest of the script; once it is ready, the outbox left by the killed
    one must have gone out (sent_at set, the text sent by this process)."""
    owed = pending_outbox(db)
    bot = spawn(db, script, name="crash")
    bot.wait_ready()
    assert all(sent_at(db, list(owed)).values()), f"outbox not delivered at start-up {note}"
    texts = [m["text"] for m in received(db) if m["pid"] == bot.process.pid]
    assert all(text in texts for text in owed.values()), f"owed messages not sent {note}"
    return bot


def test_sigkill_at_random_moments_loses_no_committed_turn(tmp_path: Path, spawn: Spawn) -> None:
    seed = random_seed()
    rng = random.Random(seed)
    note = f"(RELIABILITY_SEED={seed} replays these kill moments)"
    people = customers(CUSTOMERS)
    db = tmp_path / "bot.sqlite3"
    new_database(db, people)
    updates = Updates()
    script = interleaved([c.apply_flow(updates) for c in people])
    for update_id, update in enumerate(script, start=5000):  # Telegram numbers them in order
        update["update_id"] = update_id

    acked: list[int] = []
    for kill in range(KILLS):
        rest = script[len(acked) :]
        if rng.random() < STARTUP_KILLS:
            # while it starts: opening the store, delivering what the last one left in the outbox
            bot = spawn(db, rest, name="crash")
            bot.wait_up()
            time.sleep(rng.uniform(0, 0.08))
        else:
            bot = restarted(spawn, db, rest, note)
            # somewhere in the script, leaving room for the kills still to come
            after = rng.randint(1, max(1, len(rest) // (KILLS - kill + 1)))
            bot.until(lambda: len(bot.acked) >= after)  # noqa: B023 - called right here
            time.sleep(rng.uniform(0, 0.008))  # mid-turn: in a transaction, a send, a mark...
        bot.kill()
        acked += bot.acked
        assert problems(db, acked) == [], f"after kill {kill + 1} {note}"

    last = restarted(spawn, db, script[len(acked) :], note)
    last.finish()
    acked += last.acked
    assert acked == [u["update_id"] for u in script], note
    assert problems(db, acked) == [], note
    assert delivery_problems(db, complete=True) == [], note

    # and each customer got exactly what one uninterrupted run would have given them: every
    # update one turn (the conversation's version counts them), one ticket, one photo on it
    for customer in people:
        turns = sum(1 for u in script if chat_of(u) == customer.user.id)
        version = scalar(
            db, "SELECT version FROM conversations WHERE user_id = ?", str(customer.user.id)
        )
        assert version == turns, f"{customer}: {version} turns for {turns} updates {note}"
        photos = scalar(
            db,
            "SELECT count(*) FROM evidence JOIN tickets USING (ticket_no) WHERE order_id = ?",
            customer.order_id,
        )
        assert photos == 1, f"{customer}: {photos} photos {note}"
        count = scalar(db, "SELECT count(*) FROM tickets WHERE order_id = ?", customer.order_id)
        assert count == 1, f"{customer}: {count} tickets {note}"
        status = scalar(db, "SELECT status FROM tickets WHERE order_id = ?", customer.order_id)
        refunded = scalar(
            db,
            "SELECT coalesce(sum(amount_fen), 0) FROM refunds WHERE order_id = ?",
            customer.order_id,
        )
        if customer.reason == SEVEN_DAY:  # a fast refund: approved at submission
            assert (status, refunded) == ("approved", 19800), f"{customer} {note}"
        else:
            assert (status, refunded) == ("submitted", 0), f"{customer} {note}"
