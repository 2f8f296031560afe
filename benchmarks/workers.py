"""The webhook path end to end with 1, 2, 4 worker processes on one PostgreSQL database, against one
worker on SQLite (`bench.py --store postgresql --workers 1,2,4`).

Each worker is tests/reliability/worker.py: `refund-bot run`'s webhook server (200 only after the
turn committed and its replies went through the fake Bot API) over the real App and PTB
Application. The client here plays Telegram: C chats at a time, each posting its customer's 12
updates in order (the next once the last one was answered), every update to a random worker (a
load balancer), over keep-alive HTTP/1.1 connections (a minimal client, so the driver's own CPU
stays small). The workers report each keyboard they send on a unix datagram socket, which is how
the client presses buttons. The store's work runs in the workers' store threads
(asyncio.to_thread, bot/telegram/_offloop.py), turns and outbox reads/records alike.

Figures per configuration: updates/s (wall clock), p50/p99 of one POST (send → 200), and CPU time
per update summed over the worker processes and the PostgreSQL backends of the database (utime +
stime from /proc/<pid>/stat; the backends found in pg_stat_activity; the server's shared
background processes are left out: other databases on the same server use them too).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONCURRENT_CHATS = 16
SECRET = "workers-secret"
PROFILE: list[str] = []


@dataclass
class Figures:
    updates: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    def as_dict(self) -> dict[str, float]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {
            "updates_per_s": round(self.updates / self.seconds, 1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "cpu_ms_per_update": round(1000 * self.cpu_seconds / self.updates, 3),
        }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


class Connection:
    """One keep-alive HTTP/1.1 connection to a worker: POST, wait for the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST /hook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class KeyboardsSeen(asyncio.DatagramProtocol):
    """The keyboards the workers report: chat -> (message_id, [(label, data)...])."""

    def __init__(self) -> None:
        self.shown: dict[int, tuple[int, list[tuple[str, str]]]] = {}
        self.changed: dict[int, asyncio.Event] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        chat, message_id, buttons = json.loads(data)
        self.shown[chat] = (message_id, [tuple(b) for b in buttons])  # type: ignore[misc]
        event = self.changed.get(chat)
        if event is not None:
            event.set()

    async def press_data(self, chat: int, label: str) -> tuple[int, str]:
        while True:
            shown = self.shown.get(chat)
            if shown is not None:
                data = next((d for text, d in shown[1] if label in text), None)
                if data is not None:
                    return shown[0], data
            event = self.changed.setdefault(chat, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), 10)
            except TimeoutError:
                raise RuntimeError(f"chat {chat}: no button {label!r} in {shown}") from None


def start_worker(url: str, port: int, sock: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, *PROFILE, "-m", "tests.reliability.worker", url, str(port), "-"]
            + ["--latency", "0", "--job-interval", "5", "--keyboards", sock],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def backends(admin_url: str, database: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as db:
        rows = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


async def replay(
    ports: Sequence[int], keyboards: KeyboardsSeen, customers: Sequence[int], seed: int
) -> tuple[int, float, list[float]]:
    """Every customer's 12 updates, CONCURRENT_CHATS chats at a time; (updates, s, latencies)."""
    from benchmarks.bench import APPLY_FLOW, FIRST_UPDATE, phone_of, user_of
    from bot.testing import Updates
    from tests.telegram.support import NOW

    rng = random.Random(seed)
    up = Updates(NOW, first_id=FIRST_UPDATE + seed * 1_000_000)
    queue = list(customers)
    latencies: list[float] = []

    async def slot() -> None:
        conns = [Connection(port) for port in ports]
        try:
            while queue:
                n = queue.pop()
                user = user_of(n)
                for kind, arg in APPLY_FLOW:
                    if kind == "command":
                        data = up.command(user, arg)
                    elif kind == "contact":
                        data = up.contact(user, phone=phone_of(n))
                    elif kind == "photo":
                        data = up.photo(user, f"ph-{n}")
                    else:
                        message_id, token = await keyboards.press_data(user.id, arg)
                        data = up.press(user, token, message_id=message_id)
                    body = json.dumps(data).encode()
                    t0 = time.perf_counter()
                    status = await rng.choice(conns).post(body)
                    latencies.append(time.perf_counter() - t0)
                    if status != 200:
                        raise RuntimeError(f"customer {n}: HTTP {status}")
        finally:
            for conn in conns:
                conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(CONCURRENT_CHATS)))
    return len(latencies), time.perf_counter() - started, latencies


async def measure_config(url: str, workers: int, n: int, warm: int, folder: Path) -> Figures:
    """`workers` processes on the database at `url` (orders already imported)."""
    sock = str(folder / f"keyboards-{workers}-{os.getpid()}.sock")
    with suppress(FileNotFoundError):
        os.unlink(sock)
    loop = asyncio.get_running_loop()
    transport, keyboards = await loop.create_datagram_endpoint(
        KeyboardsSeen, local_addr=sock, family=socket.AF_UNIX
    )
    ports = [free_port() for _ in range(workers)]
    procs = [
        start_worker(url, port, sock, folder / f"worker-{workers}-{i}.log")
        for i, port in enumerate(ports)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            if '"ready"' not in line:
                raise RuntimeError(f"worker did not start: {line!r}")
        await replay(ports, keyboards, range(n, n + warm), seed=1)
        pg_admin, database = _pg_target(url)
        watched = [p.pid for p in procs]
        before = {pid: cpu_seconds(pid) for pid in watched}
        if pg_admin:
            before |= {pid: cpu_seconds(pid) for pid in backends(pg_admin, database)}
        updates, seconds, latencies = await replay(ports, keyboards, range(n), seed=2)
        after_pids = set(before) | (set(backends(pg_admin, database)) if pg_admin else set())
        cpu = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in after_pids)
        return Figures(updates, seconds, latencies, cpu)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
        transport.close()


def _pg_target(url: str) -> tuple[str, str]:
    """(admin URL, database name) of a PostgreSQL URL; ("", "") for SQLite."""
    if not url.startswith("postgresql"):
        return "", ""
    from urllib.parse import urlsplit

    return url, urlsplit(url).path.lstrip("/")


def prepare(url: str, customers: int) -> None:
    from benchmarks.bench import order_of
    from bot.orders_import import import_orders
    from bot.store import open_store

    store = open_store(url)
    try:
        import_orders(store, [order_of(n) for n in range(customers)])
    finally:
        store.close()


def check(url: str, customers: int) -> None:
    """Every customer got a ticket; every committed message was sent."""
    from bot.store import open_store

    store = open_store(url)
    try:
        with store.unit_of_work() as uow:
            pending = uow.pending_outbox(10)
            tickets = sum(len(uow.tickets_of_order(f"B{n:08d}")) for n in range(customers))
    finally:
        store.close()
    if tickets != customers or pending:
        raise RuntimeError(f"{tickets} tickets for {customers} customers, {len(pending)} unsent")


async def measure_workers(counts: Sequence[int], n: int, warm: int) -> dict[str, Any]:
    """{"workers": {"1": {...}, ...}, "sqlite_webhook": {...}}: all in one run, on the server of
    the PostgreSQL tests (REFUND_BOT_TEST_PG_URL), in throwaway databases."""
    from tests.store.postgres import Databases

    result: dict[str, Any] = {"workers": {}}
    databases = Databases()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            folder = Path(tmp)
            sqlite_url = f"sqlite:///{folder / 'bot.sqlite3'}"
            prepare(sqlite_url, n + warm)
            print("webhook, SQLite, 1 worker…", file=sys.stderr, flush=True)
            figures = await measure_config(sqlite_url, 1, n, warm, folder)
            check(sqlite_url, n + warm)
            result["sqlite_webhook"] = figures.as_dict()
            for count in counts:
                url = databases.create()
                prepare(url, n + warm)
                print(f"webhook, PostgreSQL, {count} worker(s)…", file=sys.stderr, flush=True)
                figures = await measure_config(url, count, n, warm, folder)
                check(url, n + warm)
                result["workers"][str(count)] = figures.as_dict()
                databases.drop(url)
    finally:
        databases.close()
    return result
