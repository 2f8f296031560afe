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
# latency is measured apart from throughput, at an offered load well inside what one worker
# takes: RATE updates/s (open loop), customers thinking THINK s on average between updates
RATE = 50.0
THINK = 0.3
SECRET = "workers-secret"
WORKER_ARGS = ("--latency", "0", "--job-interval", "5")  # Bot API answers at once; jobs idle
IN_FLIGHT = 20_000  # conversations in progress for the PicklePersistence comparison
FURTHER = 2_000  # further updates timed


@dataclass
class Figures:
    updates: int
    seconds: float
    latencies: list[float]  # at saturation (CONCURRENT_CHATS chats at a time)
    cpu_seconds: float
    paced: list[float]  # at RATE updates/s
    paced_steal: float  # share of the machine's CPU time the hypervisor took while paced

    def as_dict(self) -> dict[str, float]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {
            "updates_per_s": round(self.updates / self.seconds, 1),
            "p50_ms": pct(self.paced, 0.50),
            "p99_ms": pct(self.paced, 0.99),
            "cpu_ms_per_update": round(1000 * self.cpu_seconds / self.updates, 3),
            "saturated_p50_ms": pct(self.latencies, 0.50),
            "saturated_p99_ms": pct(self.latencies, 0.99),
            "paced_steal_pct": round(100 * self.paced_steal, 1),
        }


def cpu_ticks() -> tuple[int, int]:
    """(steal, all) CPU ticks of the machine so far (/proc/stat): on a virtual machine, the time
    the hypervisor gave its cores to someone else, which every process here waits out."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])


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
        # the worker sent the keyboard's datagram before its answer, so it is in the socket
        # already: let the loop poll once more so that it is read before the lookup
        await asyncio.sleep(0.001)
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
            [
                sys.executable,
                "-m",
                "tests.reliability.worker",
                url,
                str(port),
                "-",
                *WORKER_ARGS,
                "--keyboards",
                sock,
            ],
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
    ports: Sequence[int],
    keyboards: KeyboardsSeen,
    customers: Sequence[int],
    seed: int,
    rate: float | None = None,
) -> tuple[int, float, list[float]]:
    """Every customer's 12 updates, each chat in order (the next once the last was answered);
    (updates, s, latencies). rate None: CONCURRENT_CHATS chats at a time, each update sent as soon
    as the last was answered (saturation: how much the workers can take). rate R: open loop at
    about R updates/s, as traffic reaches a bot: customers arrive at random (Poisson, R/12 per
    second) and each waits a random moment (exponential, THINK s on average) before their next
    update, whatever the workers' backlog."""
    from benchmarks.bench import APPLY_FLOW, FIRST_UPDATE, phone_of, user_of
    from bot.testing import Updates
    from tests.telegram.support import NOW

    rng = random.Random(seed)
    up = Updates(NOW, first_id=FIRST_UPDATE + seed * 1_000_000)
    queue = list(customers)
    latencies: list[float] = []

    async def customer(n: int, conns: list[Connection], paced: bool) -> None:
        user = user_of(n)
        for kind, arg in APPLY_FLOW:
            if paced:
                await asyncio.sleep(rng.expovariate(1 / THINK))
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

    async def slot() -> None:
        conns = [Connection(port) for port in ports]
        try:
            while queue:
                await customer(queue.pop(), conns, paced=False)
        finally:
            for conn in conns:
                conn.close()

    async def arrivals(per_second: float) -> None:
        running = []
        for n in customers:
            conns = [Connection(port) for port in ports]  # a connection of its own, like Telegram
            running.append(asyncio.create_task(customer(n, conns, paced=True)))
            running[-1].add_done_callback(lambda _, cs=conns: [c.close() for c in cs])
            await asyncio.sleep(rng.expovariate(per_second / len(APPLY_FLOW)))
        await asyncio.gather(*running)

    started = time.perf_counter()
    if rate is None:
        await asyncio.gather(*(slot() for _ in range(CONCURRENT_CHATS)))
    else:
        await arrivals(rate)
    return len(latencies), time.perf_counter() - started, latencies


async def measure_config(
    url: str, workers: int, n: int, warm: int, paced: int, folder: Path
) -> Figures:
    """`workers` processes on the database at `url` (orders of n + warm + paced customers
    imported): warm-up, saturation (throughput, CPU), then `paced` customers at RATE."""
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
        later = range(n + warm, n + warm + paced)
        steal_before, ticks_before = cpu_ticks()
        _, _, at_rate = await replay(ports, keyboards, later, seed=3, rate=RATE)
        steal_after, ticks_after = cpu_ticks()
        steal = (steal_after - steal_before) / max(1, ticks_after - ticks_before)
        return Figures(updates, seconds, latencies, cpu, at_rate, steal)
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


async def measure_workers(counts: Sequence[int], n: int, warm: int, paced: int) -> dict[str, Any]:
    """{"workers": {"1": {...}, ...}, "sqlite_webhook": {...}}: all in one run, on the server of
    the PostgreSQL tests (REFUND_BOT_TEST_PG_URL), in throwaway databases."""
    from bot.telegram._heap import frozen_startup_heap
    from tests.store.postgres import Databases

    result: dict[str, Any] = {"workers": {}}
    databases = Databases()
    # the client's own start-up heap out of its collector's walks, as the workers' (a pause of
    # the client would count in every answer it is waiting for)
    with frozen_startup_heap():
        await _measure_all(result, databases, counts, n, warm, paced)
    return result


async def _measure_all(
    result: dict[str, Any], databases: Any, counts: Sequence[int], n: int, warm: int, paced: int
) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            folder = Path(tmp)
            sqlite_url = f"sqlite:///{folder / 'bot.sqlite3'}"
            prepare(sqlite_url, n + warm + paced)
            print("webhook, SQLite, 1 worker…", file=sys.stderr, flush=True)
            figures = await measure_config(sqlite_url, 1, n, warm, paced, folder)
            check(sqlite_url, n + warm + paced)
            result["sqlite_webhook"] = figures.as_dict()
            print(f"  {result['sqlite_webhook']}", file=sys.stderr, flush=True)
            for count in counts:
                url = databases.create()
                prepare(url, n + warm + paced)
                print(f"webhook, PostgreSQL, {count} worker(s)…", file=sys.stderr, flush=True)
                figures = await measure_config(url, count, n, warm, paced, folder)
                check(url, n + warm + paced)
                result["workers"][str(count)] = figures.as_dict()
                print(f"  {result['workers'][str(count)]}", file=sys.stderr, flush=True)
                databases.drop(url)
    finally:
        databases.close()


# -- PTB + PicklePersistence with 20,000 conversations in progress ------------------------------


async def pickle_in_flight(folder: Path, in_flight: int, further: int) -> float:
    """updates/s of `further` updates of customers in the middle of the apply flow, `in_flight`
    conversations in the pickle (seeded in its file, as PTB writes it), each update's state
    written before the next (update_persistence)."""
    import pickle

    from telegram.ext import PicklePersistence

    from benchmarks.bench import (
        APPLY_FLOW,
        IN_PROGRESS,
        Client,
        baseline_application,
        replay,
        user_of,
    )
    from bot.testing import FakeTelegram

    path = folder / "bot.pickle"
    conversations = {(user_of(n).id, user_of(n).id): IN_PROGRESS for n in range(in_flight)}
    data = {"user_data": {}, "chat_data": {}, "bot_data": {}, "callback_data": None}
    with path.open("wb") as f:
        pickle.dump({**data, "conversations": {"apply": conversations}}, f)
    tg = FakeTelegram(record=False)
    persistence: Any = PicklePersistence(path, single_file=True, on_flush=False)
    application = baseline_application(tg, persistence)
    await application.initialize()
    try:
        run = await replay(
            application,
            Client(tg, fixed_presses=True),
            range(further),
            APPLY_FLOW[IN_PROGRESS : IN_PROGRESS + 1],
            after=application.update_persistence,
        )
    finally:
        await application.shutdown()
    return float(run.ups)


async def ours_in_flight(folder: Path, url: str | None, in_flight: int, further: int) -> float:
    """updates/s of the same `further` updates through our bot (in process, like bench.py's own
    figures), with `in_flight` conversations in the store: `further` customers brought to the middle
    of the flow by their updates, the rest seeded; on SQLite, or (url) PostgreSQL, seeded there by
    `db copy` of the SQLite file."""
    from benchmarks.bench import APPLY_FLOW, IN_PROGRESS, Ours, seed_database
    from bot.store import parse_store_url
    from bot.store._copy import copy_database
    from bot.store.sqlite import SqliteStore
    from tests.telegram.support import telegram_config

    seeded = folder / "seed.sqlite3"
    with SqliteStore.open(seeded):
        pass
    seed_database(seeded, in_flight - further, 0)
    ours = Ours(folder)
    if url is None:
        seeded.replace(ours.config.store.path)
    else:
        copy_database(parse_store_url(f"sqlite:///{seeded}"), parse_store_url(url))
        ours.config = ours.harness.config = telegram_config(folder, store={"url": url})
    await ours.start(range(further))
    try:
        await ours.replay(range(further), APPLY_FLOW[:IN_PROGRESS])
        run = await ours.replay(range(further), APPLY_FLOW[IN_PROGRESS : IN_PROGRESS + 1])
    finally:
        await ours.stop()
    return float(run.ups)


async def measure_in_flight(in_flight: int = IN_FLIGHT, further: int = FURTHER) -> dict[str, float]:
    """ratio_vs_pickle_20k_sqlite / _postgresql and the updates/s behind them (`--quick`: a
    tenth of the size, said by `in_flight`)."""
    from tests.store.postgres import Databases

    databases = Databases()
    size = f"{in_flight:,} in progress, {further:,} timed"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-20k-") as tmp:
            print(f"PTB + PicklePersistence, {size}…", file=sys.stderr, flush=True)
            base = await pickle_in_flight(Path(tmp), in_flight, further)
            print(f"  {base:,.0f} updates/s", file=sys.stderr, flush=True)
            (Path(tmp) / "sqlite").mkdir()
            print(f"ours on SQLite, {size}…", file=sys.stderr, flush=True)
            sqlite_ups = await ours_in_flight(Path(tmp) / "sqlite", None, in_flight, further)
            print(f"  {sqlite_ups:,.0f} updates/s", file=sys.stderr, flush=True)
            (Path(tmp) / "pg").mkdir()
            print(f"ours on PostgreSQL, {size}…", file=sys.stderr, flush=True)
            url = databases.create(migrated=False)
            pg_ups = await ours_in_flight(Path(tmp) / "pg", url, in_flight, further)
            print(f"  {pg_ups:,.0f} updates/s", file=sys.stderr, flush=True)
    finally:
        databases.close()
    return {
        "in_flight": in_flight,
        "pickle_20k_updates_per_s": round(base, 1),
        "ours_20k_sqlite_updates_per_s": round(sqlite_ups, 1),
        "ours_20k_postgresql_updates_per_s": round(pg_ups, 1),
        "ratio_vs_pickle_20k_sqlite": round(sqlite_ups / base, 2),
        "ratio_vs_pickle_20k_postgresql": round(pg_ups / base, 2),
    }


def workers_table(figures: dict[str, Any]) -> str:
    """The workers' and the 20k comparison's figures as text, with the issue's targets."""
    lines = [
        "webhook path end to end (POST → turn → commit → reply → 200): updates/s and CPU at"
        f" saturation ({CONCURRENT_CHATS} chats at a time),",
        f"latency at {RATE:.0f} updates/s offered (open loop) and at saturation; steal: the share"
        " of the machine's CPU time its hypervisor took while the latency was measured",
        f"{'':<26}{'updates/s':>10}{'CPU ms/upd':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'sat. p50':>10}{'sat. p99':>10}{'steal %':>9}",
    ]
    rows = [("SQLite, 1 worker", figures["sqlite_webhook"])]
    rows += [(f"PostgreSQL, {k} worker(s)", v) for k, v in figures["workers"].items()]
    for label, f in rows:
        lines.append(
            f"{label:<26}{f['updates_per_s']:>10,.0f}{f['cpu_ms_per_update']:>11.2f}"
            f"{f['p50_ms']:>8.1f}{f['p99_ms']:>8.1f}"
            f"{f['saturated_p50_ms']:>10.1f}{f['saturated_p99_ms']:>10.1f}"
            f"{f.get('paced_steal_pct', 0.0):>9.1f}"
        )
    workers, sqlite = figures["workers"], figures["sqlite_webhook"]
    one = workers.get("1")
    lines.append("")
    if one is not None:
        for k in ("2", "4"):
            if k in workers:
                ratio = workers[k]["cpu_ms_per_update"] / one["cpu_ms_per_update"]
                lines.append(f"CPU/update {k} workers / 1 worker: {ratio:.2f} (target ≤ 1.2)")
        ratio = one["updates_per_s"] / sqlite["updates_per_s"]
        lines.append(f"PostgreSQL 1 worker / SQLite updates/s: {ratio:.2f} (target ≥ 0.5)")
    if "2" in workers:
        lines.append(
            f"p99 at 2 workers, {RATE:.0f} updates/s offered: {workers['2']['p99_ms']:.1f} ms"
            f" (target ≤ 20; at saturation {workers['2']['saturated_p99_ms']:.0f} ms)"
        )
    lines.append(
        f"{figures['in_flight']:,} conversations in progress, a tenth of them one update further:"
        " PTB + pickle"
        f" {figures['pickle_20k_updates_per_s']:,.0f}/s; ours SQLite"
        f" {figures['ours_20k_sqlite_updates_per_s']:,.0f}/s"
        f" ({figures['ratio_vs_pickle_20k_sqlite']}x), PostgreSQL"
        f" {figures['ours_20k_postgresql_updates_per_s']:,.0f}/s"
        f" ({figures['ratio_vs_pickle_20k_postgresql']}x) (target ≥ 10x)"
    )
    return "\n".join(lines)
