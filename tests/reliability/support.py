"""Bot processes (tests/reliability/runner.py) driven from a test, their customers' scripts, and the
invariants the store must keep whatever happened to the processes."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.domain import OPEN_STATUSES, Order
from bot.orders_import import import_orders
from bot.store.sqlite import SqliteStore
from bot.testing import Updates, User
from tests.factories import at, make_order
from tests.reliability.runner import LABEL

ROOT = Path(__file__).resolve().parents[2]
# Bounds on waiting for a bot process, so that nothing can hang; never expected to be reached.
START_TIMEOUT = 60.0
EVENT_TIMEOUT = 30.0
JOURNAL = "telegram.jsonl"  # what the fake Telegram accepted, beside the database (runner.py)

PRODUCT = "星河视频年卡"
SEVEN_DAY = "7-day no-reason return"
SERVICE = "Service not as promised"


# -- customers and their scripts ----------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    n: int
    reason: str  # SEVEN_DAY (approved at once: a refund in the ledger) or SERVICE (for review)

    @property
    def user(self) -> User:
        return User(20_000 + self.n, first_name=f"客户{self.n}", language_code="en")

    @property
    def phone(self) -> str:
        return f"+86138{self.n:08d}"

    @property
    def order_id(self) -> str:
        return f"R{self.n:06d}"

    def order(self) -> Order:
        return make_order(
            order_id=self.order_id,
            phone=self.phone,
            customer_name=f"客户{self.n}",
            product_name=PRODUCT,
            cash_paid_fen=19800,
            list_price_fen=19800,
            paid_at=at("2026-11-22 10:00"),
        )

    def apply_flow(self, up: Updates) -> list[dict[str, Any]]:
        """Link, apply with one photo, confirm, look at the status, then try the same order
        again (refused: it has an open ticket)."""
        user = self.user

        def press(label: str) -> dict[str, Any]:
            return up.press(user, LABEL + label, message_id=1)

        def reason() -> list[dict[str, Any]]:
            if self.reason == SEVEN_DAY:
                return [press(SEVEN_DAY)]
            return [press(SERVICE), press("Benefits missing")]

        return [
            up.command(user, "start"),
            up.contact(user, phone=self.phone),
            press("Request a refund"),
            press(PRODUCT),
            *reason(),
            press("Continue request"),
            up.photo(user, f"photo-{self.n}"),
            press("Done uploading"),
            press("Full amount"),
            press("Submit"),
            up.command(user, "status"),
            up.command(user, "refund"),
            press(PRODUCT),
            *reason(),
            press("Continue request"),
        ]


def chat_of(update: dict[str, Any]) -> int:
    """The chat of a private message or press."""
    message = update.get("message") or update["callback_query"]["message"]
    return int(message["chat"]["id"])


def customers(count: int, first: int = 0) -> list[Customer]:
    return [Customer(n, SEVEN_DAY if n % 2 else SERVICE) for n in range(first, first + count)]


def interleaved(scripts: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Many customers at once: everyone's first update, then everyone's second..."""
    return [
        update for step in itertools.zip_longest(*scripts) for update in step if update is not None
    ]


def new_database(path: Path, people: Sequence[Customer]) -> None:
    """Create and migrate the store, with the customers' orders."""
    with SqliteStore.open(path) as store:
        import_orders(store, [c.order() for c in people])


# -- a bot process ------------------------------------------------------------------------------


@dataclass
class BotProcess:
    """tests/reliability/runner.py on a database and a script, its stdout read in a thread."""

    db: Path
    script: Sequence[dict[str, Any]]
    name: str = "bot"
    gate: bool = False
    acked: list[int] = field(default_factory=list)
    up: bool = False
    ready: bool = False
    done: bool = False
    _events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        folder = self.db.parent
        serial = len(list(folder.glob(f"{self.name}-*.jsonl")))
        self.script_path = folder / f"{self.name}-{serial}.jsonl"
        self.script_path.write_text(
            "".join(json.dumps(u, ensure_ascii=False) + "\n" for u in self.script),
            encoding="utf-8",
        )
        self.log_path = folder / f"{self.name}-{serial}.log"
        self._log: TextIO = self.log_path.open("w", encoding="utf-8")
        command = [sys.executable, "-m", "tests.reliability.runner", str(self.db)]
        command += [str(self.script_path), *(["--gate"] if self.gate else [])]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):  # half a line at a kill
                self._events.put(json.loads(line))
        self._events.put(None)  # end of output

    def _take(self, event: dict[str, Any]) -> None:
        if "ack" in event:
            self.acked.append(int(event["ack"]))
        elif event.get("up"):
            self.up = True
        elif event.get("ready"):
            self.ready = True
        elif event.get("done"):
            self.done = True

    def until(self, condition: Callable[[], bool], timeout: float = EVENT_TIMEOUT) -> None:
        """Read events until `condition` holds; fail (and stop the process) if it never does."""
        while not condition():
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise AssertionError(
                    f"{self.name}: no progress in {timeout}s\n{self.log}"
                ) from None
            if event is None:
                self.process.wait(timeout=EVENT_TIMEOUT)
                raise AssertionError(
                    f"{self.name} ended (exit {self.process.returncode}) before the condition"
                    f" held\n{self.log}"
                )
            self._take(event)

    def wait_up(self) -> None:
        """Until the imports are done and the store is about to be opened."""
        self.until(lambda: self.up, START_TIMEOUT)

    def wait_ready(self) -> None:
        self.until(lambda: self.ready, START_TIMEOUT)

    def go(self) -> None:
        """Open the gate (--gate): the script starts."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL, then collect what it printed before dying (those acks were given)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.close()

    def finish(self) -> None:
        """Wait for the end of the script and a clean exit."""
        self.until(lambda: self.done, START_TIMEOUT)
        self.close()
        assert self.process.returncode == 0, f"{self.name} exited {self.process.returncode}"

    def close(self) -> None:
        """Wait for the process (killed or ending) and its output; free the pipes."""
        if self.process.poll() is None and not self.done:
            self.process.kill()  # a test that failed half-way: nothing may outlive it
        self.process.wait(timeout=EVENT_TIMEOUT)
        self._reader.join(timeout=EVENT_TIMEOUT)
        self._drain()
        for stream in (self.process.stdin, self.process.stdout, self._log):
            if stream is not None and not stream.closed:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()

    def _drain(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event is not None:
                self._take(event)

    @property
    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8")


# -- what must hold whatever happened ----------------------------------------------------------

OPEN = ", ".join(f"'{s.value}'" for s in OPEN_STATUSES)


@contextlib.contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path)
    try:
        yield db
    finally:
        db.close()


def problems(path: Path, acked: Sequence[int] = (), *, in_order: bool = True) -> list[str]:
    """Every broken invariant of the store (an empty list: all is well). `in_order`: each
    customer's updates were handled in script order (one process), so every ticket has the
    photo its script uploads; with two processes racing, a seven-day request (no evidence
    required) may be submitted before the photo arrives, and only the pre-check's minimum holds."""
    found: list[str] = []
    with database(path) as db:

        def rows(sql: str, *params: object) -> list[tuple[Any, ...]]:
            return db.execute(sql, params).fetchall()

        integrity = rows("PRAGMA integrity_check")
        if integrity != [("ok",)]:
            found.append(f"integrity_check: {integrity}")
        for row in rows("PRAGMA foreign_key_check"):
            found.append(f"foreign key broken: {row}")
        for (ticket,) in rows(
            "SELECT ticket_no FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM ticket_events e"
            " WHERE e.ticket_no = t.ticket_no AND e.kind = 'submitted')"
        ):
            found.append(f"ticket {ticket} has no 'submitted' event")
        for ticket, required, count in rows(
            "SELECT ticket_no, json_extract(quote, '$.evidence.min_count'),"
            " (SELECT count(*) FROM evidence e WHERE e.ticket_no = t.ticket_no) FROM tickets t"
        ):
            if count < required:
                found.append(
                    f"ticket {ticket} has {count} file(s), its pre-check required {required}"
                )
            elif in_order and count == 0:
                found.append(
                    f"ticket {ticket} has lost its evidence (every script uploads a photo)"
                )
        for (ticket,) in rows(
            "SELECT ticket_no FROM tickets t WHERE status = 'approved' AND NOT EXISTS"
            " (SELECT 1 FROM refunds r WHERE r.ticket_no = t.ticket_no)"
        ):
            found.append(f"approved ticket {ticket} has no payout in the ledger")
        for order, count in rows(
            f"SELECT order_id, count(*) FROM tickets WHERE status IN ({OPEN})"
            " GROUP BY order_id HAVING count(*) > 1"
        ):
            found.append(f"order {order} has {count} open tickets")
        for order, refunded, paid in rows(
            "SELECT r.order_id, sum(r.amount_fen), o.cash_paid_fen FROM refunds r"
            " JOIN orders o USING (order_id) WHERE r.state IN ('pending', 'paid')"
            " GROUP BY r.order_id HAVING sum(r.amount_fen) > o.cash_paid_fen"
        ):
            found.append(f"order {order}: refunds {refunded} exceed the cash paid {paid}")
        recorded = {key for (key,) in rows("SELECT dedupe_key FROM processed_updates")}
        lost = [u for u in acked if f"tg:{u}" not in recorded]
        if lost:
            found.append(f"acknowledged updates without effect: {lost}")
    return found + delivery_problems(path)


def received(path: Path) -> list[dict[str, Any]]:
    """What Telegram accepted, in order: {"chat", "text", "pid"} (the runner's journal)."""
    journal = path.parent / JOURNAL
    if not journal.exists():
        return []
    lines = journal.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def outbox(path: Path) -> list[tuple[int, str, str, str | None]]:
    """(outbox_id, recipient, text, sent_at) of every message, in order."""
    with database(path) as db:
        rows = db.execute(
            "SELECT outbox_id, recipient, payload, sent_at FROM outbox ORDER BY outbox_id"
        ).fetchall()
    return [(i, r, json.loads(p)["text"], at) for i, r, p, at in rows]


def delivery_problems(path: Path, complete: bool = False) -> list[str]:
    """A message marked sent must be one Telegram accepted; with `complete`, every committed
    message must have been sent, and each chat got its messages in the order committed (a
    message sent again after a crash may repeat, nothing may be missing or overtake)."""
    found = []
    got = received(path)
    accepted = Counter((str(m["chat"]), m["text"]) for m in got)
    marked = Counter((r, text) for _, r, text, at in outbox(path) if at is not None)
    for (chat, text), count in (marked - accepted).items():
        found.append(f"chat {chat}: {count} x {text[:40]!r} marked sent, never accepted")
    if complete:
        by_chat: dict[str, list[str]] = {}
        for m in got:
            by_chat.setdefault(str(m["chat"]), []).append(m["text"])
        for outbox_id, chat, text, at in outbox(path):
            if at is None:
                found.append(f"outbox {outbox_id} to {chat} never sent: {text[:40]!r}")
        for chat, texts in itertools.groupby(
            sorted(outbox(path), key=lambda m: (m[1], m[0])), key=lambda m: m[1]
        ):
            wanted = [m[2] for m in texts]
            stream = iter(by_chat.get(chat, []))
            if not all(any(text == seen for seen in stream) for text in wanted):
                found.append(f"chat {chat}: messages missing or out of order")
    return found


def pending_outbox(path: Path) -> dict[int, str]:
    """outbox_id -> text of every message committed but not sent."""
    with database(path) as db:
        rows = db.execute("SELECT outbox_id, payload FROM outbox WHERE sent_at IS NULL").fetchall()
    return {outbox_id: json.loads(payload)["text"] for outbox_id, payload in rows}


def sent_at(path: Path, ids: Sequence[int]) -> dict[int, str | None]:
    with database(path) as db:
        return {
            outbox_id: db.execute(
                "SELECT sent_at FROM outbox WHERE outbox_id = ?", (outbox_id,)
            ).fetchone()[0]
            for outbox_id in ids
        }


def scalar(path: Path, sql: str, *params: object) -> Any:
    with database(path) as db:
        return db.execute(sql, params).fetchone()[0]
