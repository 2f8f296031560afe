# ruff: noqa: E402  (the repository root goes on sys.path before the project's imports)
"""How fast is the whole bot, against the obvious alternatives? `python benchmarks/bench.py`.

N customers each do the whole apply flow (/start, share contact, "Request a refund", the order,
the reason and sub-reason, continue, one evidence photo, done, full amount, submit, /status: 12
updates) as raw Bot API update JSON through python-telegram-bot's `Application.process_update`,
over the fake Bot API transport of bot.testing, with the engine
committing every turn to a SQLite file (WAL). The customers go step by step together (everyone's
first update, then everyone's second...), so N conversations are in progress at once. The
production rate limiter stays in, with its throttling off: Telegram's own 30 messages/s per bot
is Telegram's limit, not the bot's cost.

Baselines, in the same run, on the same transport and the same update JSON:
  (a) bare: a plain PTB ConversationHandler with the same 12 steps, each only replying (a press
      is answered, then one message with a button is sent). The floor: PTB itself.
  (b) pickle: the same ConversationHandler with PicklePersistence (one file, on_flush=False, so
      each changed state rewrites the file) and `application.update_persistence()` awaited after
      every update: every update's state is on disk before the next one, as with our commit per
      turn. Its handlers keep no data, so this is the least pickle can cost.

Figures: updates/s (wall clock of the replay), p50/p99 latency of one update (Update.de_json +
process_update, + update_persistence for (b)) for N = 200 and 2,000; our throughput on a database
already holding 50,000 conversations and 100,000 tickets against one holding 1,000 and 2,000
(best of two replays each); the resident memory of 10,000 conversations in progress, in a child
process. `--json` prints the figures as one JSON object; `--quick` is a smaller smoke run;
`--breakdown` prints only where one update's time goes in our bot, layer by layer, against bare PTB.

`--store postgresql --workers 1,2,4` adds, in the same run, the webhook path end to end through
worker processes on one PostgreSQL database against one worker on SQLite, and PTB +
PicklePersistence with 20,000 conversations in progress against ours on either store (see
benchmarks/workers.py); `--json` then adds `workers`, `sqlite_webhook`,
`ratio_vs_pickle_20k_sqlite` and `ratio_vs_pickle_20k_postgresql`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.calendar import WorkingCalendar
from bot.clock import FixedClock
from bot.domain import OPEN_STATUSES, History, Order, Reason, TicketStatus
from bot.orders_import import import_orders
from bot.rules import assess
from bot.store.sqlite import SqliteStore
from bot.telegram import _outbox as outbox_module
from bot.testing import TOKEN, FakeTelegram, Harness, Updates, User
from tests.factories import at, make_order
from tests.telegram.support import NOW, telegram_config

Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, int]]
TARGETS = {
    "ratio_vs_bare": 0.5,  # ours >= 0.5 x bare PTB
    "ratio_vs_pickle": 10.0,  # ours >= 10 x PicklePersistence, at N = 2,000
    "scale_ratio_50k_vs_1k": 0.9,  # throughput with 50k stored >= 0.9 x with 1k
    "p99_ms": 10.0,  # <= 10 ms
    "rss_mb_10k": 50.0,  # <= 50 MB more for 10,000 conversations in progress
}
WARM_UP = 20  # customers replayed before the timed ones (imports, caches, statement cache)
FIRST_USER = 10_000_000
FIRST_UPDATE = 100_000_000  # above the update ids of a seeded database
BIG = (50_000, 100_000)  # conversations, tickets already stored
SMALL = (1_000, 2_000)

# -- the customers ------------------------------------------------------------------------------

PRODUCT = "星河视频年卡"
# (kind, argument): the 12 updates of one customer; a press names its button by label
APPLY_FLOW: tuple[tuple[str, str], ...] = (
    ("command", "start"),
    ("contact", ""),
    ("press", "Request a refund"),
    ("press", PRODUCT),
    ("press", "Service not as promised"),
    ("press", "Benefits missing"),
    ("press", "Continue request"),
    ("photo", ""),
    ("press", "Done uploading"),
    ("press", "Full amount"),
    ("press", "Submit"),
    ("command", "status"),
)
IN_PROGRESS = 5  # /start, contact, "Request a refund", the order, the reason: mid-flow


def phone_of(n: int) -> str:
    return f"+86139{n:08d}"


def order_of(n: int) -> Order:
    return make_order(
        order_id=f"B{n:08d}",
        phone=phone_of(n),
        customer_name=f"客户{n}",
        product_name=PRODUCT,
        cash_paid_fen=19800,
        list_price_fen=19800,
        paid_at=at("2026-11-22 10:00"),
    )


def user_of(n: int) -> User:
    return User(FIRST_USER + n, first_name=f"客户{n}", language_code="en")


class Client:
    """What a Telegram client does for the customers: build each next update as raw JSON."""

    def __init__(self, tg: FakeTelegram, fixed_presses: bool) -> None:
        self.tg = tg
        self.fixed = fixed_presses  # the baselines' buttons carry their label as callback data
        # given the fake, the photos are files it holds: the bot downloads and checks each one
        self.updates = Updates(NOW, first_id=FIRST_UPDATE, tg=tg)

    def update(self, user: User, n: int, kind: str, arg: str) -> dict[str, Any]:
        up = self.updates
        if kind == "command":
            return up.command(user, arg)
        if kind == "contact":
            return up.contact(user, phone=phone_of(n))
        if kind == "photo":
            return up.photo(user, f"ph-{n}")
        if self.fixed:
            return up.press(user, arg, message_id=1)
        message_id, buttons = self.tg.keyboards[user.id]
        data = next((d for label, d in buttons if arg in label), None)
        if data is None:
            raise RuntimeError(f"customer {n}: no button {arg!r} in {buttons}")
        return up.press(user, data, message_id=message_id)


@dataclass
class Run:
    updates: int
    seconds: float
    latencies: list[float]
    parse_seconds: float = 0.0  # of which in Update.de_json (the same work for every bot)

    @property
    def ups(self) -> float:
        return self.updates / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def replay(
    application: Application[Any, Any, Any, Any, Any, Any],
    client: Client,
    customers: Sequence[int],
    steps: Sequence[tuple[str, str]] = APPLY_FLOW,
    after: Callable[[], Awaitable[None]] | None = None,
) -> Run:
    """Every customer's step 1, then every customer's step 2...; each update timed."""
    bot = application.bot
    latencies = []
    parsing = 0.0
    started = time.perf_counter()
    for kind, arg in steps:
        for n in customers:
            data = client.update(user_of(n), n, kind, arg)
            t0 = time.perf_counter()
            update = Update.de_json(data, bot)
            parsing += time.perf_counter() - t0
            await application.process_update(update)
            if after is not None:
                await after()
            latencies.append(time.perf_counter() - t0)
    return Run(len(latencies), time.perf_counter() - started, latencies, parsing)


# -- ours ---------------------------------------------------------------------------------------


class Ours:
    """The App (engine + SQLite file) and its PTB Application on the fake transport."""

    def __init__(self, folder: Path, *, keep_calls: bool = False) -> None:
        self.config = telegram_config(folder)
        self.tg = FakeTelegram(record=keep_calls)
        # Telegram's own limit (30 messages/s for a bot) is not the bot's cost: the production rate
        # limiter with its throttling off, its 429 retries on
        limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
        self.harness = Harness(self.config, FixedClock(NOW), self.tg, rate_limiter=limiter)
        self.client = Client(self.tg, fixed_presses=False)

    async def start(self, customers: range, seed: tuple[int, int] | None = None) -> Ours:
        if seed is not None:
            with SqliteStore.open(self.config.store.path):
                pass  # created and migrated
            seed_database(self.config.store.path, *seed)
        await self.harness.start()
        import_orders(self.harness.engine_app.store, [order_of(n) for n in customers])
        return self

    @property
    def application(self) -> Any:
        return self.harness.application

    async def replay(
        self, customers: Sequence[int], steps: Sequence[tuple[str, str]] = APPLY_FLOW
    ) -> Run:
        return await replay(self.application, self.client, customers, steps)

    async def stop(self) -> None:
        await self.harness.stop()


async def measure_ours(n: int, seed: tuple[int, int] | None = None, runs: int = 1) -> Run:
    """Our bot on a fresh database (seeded with `seed` = (conversations, tickets) first); with
    `runs` > 1, that many replays of n new customers each, the fastest one counted."""
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as folder:
        ours = await Ours(Path(folder)).start(range(runs * n + WARM_UP), seed)
        try:
            await ours.replay(range(runs * n, runs * n + WARM_UP))
            results = [await ours.replay(range(i * n, (i + 1) * n)) for i in range(runs)]
            check_ours(ours, runs * n + WARM_UP)
            return max(results, key=lambda run: run.ups)
        finally:
            await ours.stop()


def check_ours(ours: Ours, customers: int) -> None:
    """The replay did what a customer expects: a ticket per customer, every message sent."""
    ours.harness.engine_app.store.flush()  # the last deliveries' records (Store.mark_sent_soon)
    with closing(sqlite3.connect(ours.config.store.path)) as db:
        tickets = db.execute(
            "SELECT count(*) FROM tickets WHERE order_id LIKE 'B%' AND status = 'submitted'"
        ).fetchone()[0]
        pending = db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
    if tickets != customers or pending:
        raise RuntimeError(f"replay went wrong: {tickets} tickets, {pending} messages unsent")


# -- where the time of one update goes ----------------------------------------------------------


class Stopwatches:
    """Seconds spent inside chosen methods of a running bot, summed per label."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def sync(self, owner: Any, name: str, label: str) -> None:
        method = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(owner, name, timed)

    def coroutine(self, owner: Any, name: str, label: str) -> None:
        method = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(owner, name, timed)


class TimedConnection:
    """The store's sqlite3 connection, timing every statement (the store calls only these)."""

    def __init__(self, conn: sqlite3.Connection, watches: Stopwatches) -> None:
        self._conn = conn
        self._watches = watches

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        t0 = time.perf_counter()
        try:
            return self._conn.execute(sql, params)
        finally:
            self._watches.seconds["sqlite"] += time.perf_counter() - t0

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        t0 = time.perf_counter()
        try:
            return self._conn.executemany(sql, params)
        finally:
            self._watches.seconds["sqlite"] += time.perf_counter() - t0

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def close(self) -> None:
        self._conn.close()


async def measure_breakdown(n: int) -> dict[str, float]:
    """Microseconds per update in each layer of our bot, for n customers (timers add ~5%)."""
    with tempfile.TemporaryDirectory(prefix="bench-parts-") as folder:
        ours = await Ours(Path(folder)).start(range(n + WARM_UP))
        try:
            await ours.replay(range(n, n + WARM_UP))
            watches = Stopwatches()
            adapter = ours.harness.bot.adapter
            watches.sync(adapter.engine, "handle", "engine")
            watches.coroutine(adapter.outbox, "deliver", "outbox")
            watches.coroutine(outbox_module, "send_text", "send")
            watches.coroutine(adapter, "_answer", "answer")
            watches.coroutine(adapter, "_remove_keyboard", "keyboard")
            store = ours.harness.engine_app.store
            store._conn = TimedConnection(store._conn, watches)  # a probe in the private seam
            run = await ours.replay(range(n))
        finally:
            await ours.stop()
    per_update = {k: 1e6 * v / run.updates for k, v in watches.seconds.items()}
    per_update["parse"] = 1e6 * run.parse_seconds / run.updates
    per_update["total"] = 1e6 * run.seconds / run.updates
    return per_update


def breakdown_table(parts: dict[str, float], bare: Run, n: int) -> str:
    bare_total = 1e6 * bare.seconds / bare.updates
    bare_parse = 1e6 * bare.parse_seconds / bare.updates
    rows = [
        ("Update.de_json (the same updates for both bots)", parts["parse"], bare_parse),
        ("engine turn (flow, rules, rendering, store)", parts["engine"], None),
        ("  of it and of the outbox: SQLite statements", parts["sqlite"], None),
        ("outbox: read, render, send, record", parts["outbox"], None),
        ("  of it: sendMessage calls through PTB", parts["send"], None),
        ("answer the press (answerCallbackQuery)", parts["answer"], None),
        ("take spent buttons off (editMessageReplyMarkup)", parts["keyboard"], None),
    ]
    accounted = sum(parts[k] for k in ("parse", "engine", "outbox", "answer", "keyboard"))
    rest = parts["total"] - accounted
    rows += [
        ("the rest: PTB dispatch, parsing, flood limit", rest, None),
        ("total", parts["total"], bare_total),
    ]
    # what is not our Python: the update's parsing, PTB, the Bot API calls, SQLite
    floor = parts["parse"] + rest + parts["answer"] + parts["keyboard"] + parts["send"]
    floor += parts["sqlite"]
    lines = [f"where one update's time goes, N={n}: µs per update      ours    (a) bare"]
    for label, ours_us, bare_us in rows:
        other = "" if bare_us is None else f"{bare_us:>10.0f}"
        lines.append(f"  {label:<50}{ours_us:>7.0f}{other}".rstrip())
    lines.append(
        f"without our own Python (parsing, PTB, Bot API calls, SQLite): {floor:.0f} µs per update,"
        f" at most {1e6 / floor:,.0f} updates/s"
    )
    return "\n".join(lines)


# -- the baselines: a plain ConversationHandler, bare or with PicklePersistence ------------------


def baseline_application(
    tg: FakeTelegram, persistence: PicklePersistence[Any, Any, Any] | None
) -> Application[Any, Any, Any, Any, Any, Any]:
    """PTB as its examples write it: one ConversationHandler, a callback per step, replies only."""

    def next_press(step: int) -> str:
        """The label of the button the customer presses after this step."""
        later = [label for kind, label in APPLY_FLOW[step + 1 :] if kind == "press"]
        return later[0] if later else "Main menu"

    def chat(update: Update) -> int:
        assert update.effective_chat is not None
        return update.effective_chat.id

    def keyboard(label: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=label)]])

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        contact = KeyboardButton("📱 Share phone number", request_contact=True)
        markup = ReplyKeyboardMarkup([[contact]], one_time_keyboard=True, resize_keyboard=True)
        await context.bot.send_message(chat(update), "Welcome", reply_markup=markup)
        return 1

    def step(state: int, text: str, label: str) -> Callback:
        async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
            if update.callback_query is not None:
                await update.callback_query.answer()
            await context.bot.send_message(chat(update), text, reply_markup=keyboard(label))
            return state + 1 if state + 1 < len(APPLY_FLOW) - 1 else ConversationHandler.END

        return reply

    async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await context.bot.send_message(chat(update), "Your requests: …")

    states: dict[object, list[Any]] = {}
    for state, (kind, label) in enumerate(APPLY_FLOW[1:-1], start=1):
        callback = step(state, f"step {state}", next_press(state))
        handler: Any
        if kind == "contact":
            handler = MessageHandler(filters.CONTACT, callback)
        elif kind == "photo":
            handler = MessageHandler(filters.PHOTO, callback)
        else:
            handler = CallbackQueryHandler(callback, pattern=f"^{label}$")
        states[state] = [handler]
    with warnings.catch_warnings():  # per_message=False with CallbackQueryHandlers: intended
        warnings.simplefilter("ignore", PTBUserWarning)
        conversation = ConversationHandler(
            entry_points=[CommandHandler("start", start)],
            states=states,
            fallbacks=[],
            name="apply",
            persistent=persistence is not None,
        )
    builder = ApplicationBuilder().token(TOKEN).request(tg)
    if persistence is not None:
        builder = builder.persistence(persistence)
    application = builder.build()
    application.add_handler(conversation)
    application.add_handler(CommandHandler("status", status))
    return application


async def measure_baseline(n: int, pickle: bool) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-ptb-") as folder:
        tg = FakeTelegram(record=False)
        persistence = (
            PicklePersistence(Path(folder) / "bot.pickle", single_file=True, on_flush=False)
            if pickle
            else None
        )
        application = baseline_application(tg, persistence)
        await application.initialize()
        client = Client(tg, fixed_presses=True)
        after = application.update_persistence if pickle else None
        try:
            await replay(application, client, range(n, n + WARM_UP), after=after)
            return await replay(application, client, range(n), after=after)
        finally:
            await application.shutdown()


# -- a database that has been in use for a while ------------------------------------------------


def seed_database(path: Path, conversations: int, tickets: int) -> None:
    """Customers, orders, tickets (with their event and evidence), conversations, processed
    updates and sent messages, written with executemany: seconds instead of hours of turns."""
    config = telegram_config(path.parent)
    calendar = WorkingCalendar(config.calendar.fallback_holidays, config.calendar.fallback_workdays)
    quote = assess(make_order(), Reason.SEVEN_DAY, None, NOW, config.policy, calendar, History())
    quote_json = quote.model_dump_json()
    statuses = [s.value for s in TicketStatus if s not in OPEN_STATUSES]
    transcript = [["customer", "/start"], ["bot", "您好!这里是小年卡盟退款助手。" * 3]] * 10
    data = json.dumps({"transcript": transcript, "misses": 0}, ensure_ascii=False)
    customers = max(conversations, tickets // 2)

    def rows_customers() -> Iterator[tuple[object, ...]]:
        for c in range(customers):
            yield (c + 1, f"+86137{c:08d}", f"老客户{c}")

    def rows_orders() -> Iterator[tuple[object, ...]]:
        for t in range(tickets):
            paid = f"2026-{1 + t % 10:02d}-{1 + t % 28:02d}T02:00:00.000000Z"
            yield (f"S{t:09d}", f"+86137{t % customers:08d}", paid, paid)

    def rows_tickets() -> Iterator[tuple[object, ...]]:
        for t in range(tickets):
            day = f"2026-{1 + t % 10:02d}-{1 + t % 28:02d}"
            status = statuses[t % len(statuses)] if t % 20 else "in_review"
            yield (
                f"T{day.replace('-', '')}-{t:06d}",
                f"S{t:09d}",
                t % customers + 1,
                status,
                quote_json,
                f"{day}T03:00:00.000000Z",
            )

    epoch = "2026-01-01T00:00:00.000000Z"
    with closing(sqlite3.connect(path)) as db, db:  # commit, then close
        db.execute("PRAGMA synchronous = OFF")
        db.executemany(
            "INSERT INTO customers (customer_id, phone, name) VALUES (?, ?, ?)", rows_customers()
        )
        db.executemany(
            "INSERT INTO customer_identities (channel, user_id, customer_id)"
            " VALUES ('telegram', ?, ?)",
            ((str(c + 1), c + 1) for c in range(conversations)),
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, '老客户', '腾讯视频VIP年卡', 'video_membership',"
            " 10000, 10000, 0, 0, ?, ?, '2027-12-31T00:00:00.000000Z', NULL, 0, 0, 'wechat', 1,"
            " 'active')",
            rows_orders(),
        )
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?, 'seven_day', NULL, ?, 'normal', 10000, NULL, ?,"
            " NULL, NULL, 0, NULL, ?6, ?6, 1)",
            rows_tickets(),
        )
        db.execute(
            "INSERT INTO ticket_events (ticket_no, at, actor, kind, to_status, data)"
            " SELECT ticket_no, created_at, 'customer:' || customer_id, 'submitted', 'submitted',"
            " '{}' FROM tickets"
        )
        db.execute(
            "INSERT INTO evidence (ticket_no, kind, file_id, file_unique_id, size_bytes, added_at)"
            " SELECT ticket_no, 'photo', 'f-' || ticket_no, 'u-' || ticket_no, 150000, created_at"
            " FROM tickets"
        )
        db.executemany(
            "INSERT INTO conversations VALUES ('telegram', ?, 'menu', 'main', ?, NULL, ?, 3, ?,"
            " NULL)",
            ((str(c + 1), data, c + 1, epoch) for c in range(conversations)),
        )
        db.executemany(
            "INSERT INTO processed_updates VALUES (?, ?)",
            ((f"tg:{u}", epoch) for u in range(12 * conversations)),
        )
        payload = json.dumps({"key": "menu.main", "text": "请选择:" * 10, "buttons": []})
        db.executemany(
            "INSERT INTO outbox (channel, recipient, payload, created_at, sent_at)"
            " VALUES ('telegram', ?, ?, ?, ?3)",
            ((str(c % conversations + 1), payload, epoch) for c in range(5 * conversations)),
        )
    with closing(sqlite3.connect(path)) as db:  # no ANALYZE: the store never runs one either
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- resident memory, in a child process --------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def rss_child(conversations: int) -> dict[str, float]:
    """RSS with `conversations` customers mid-flow minus RSS with none (after a warm-up)."""
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as folder:
        ours = await Ours(Path(folder)).start(range(conversations + WARM_UP))
        try:
            await ours.replay(range(conversations, conversations + WARM_UP))
            gc.collect()
            before = rss_mb()
            await ours.replay(range(conversations), APPLY_FLOW[:IN_PROGRESS])
            gc.collect()
            after = rss_mb()
            with closing(sqlite3.connect(ours.config.store.path)) as db:
                mid_flow = db.execute(
                    "SELECT count(*) FROM conversations WHERE flow = 'apply'"
                ).fetchone()[0]
            if mid_flow != conversations:
                raise RuntimeError(f"{mid_flow} conversations mid-flow, not {conversations}")
        finally:
            await ours.stop()
    return {"before_mb": before, "after_mb": after, "rss_mb": after - before}


def measure_rss(conversations: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(conversations)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the report ---------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(sizes: Sequence[int], scale_n: int, rss_n: int) -> dict[str, Any]:
    runs: dict[str, dict[str, Run]] = {"ours": {}, "bare": {}, "pickle": {}}
    for n in sizes:
        progress(f"N={n}: ours…")
        runs["ours"][str(n)] = await measure_ours(n)
        progress(f"N={n}: bare PTB…")
        runs["bare"][str(n)] = await measure_baseline(n, pickle=False)
        progress(f"N={n}: PTB + PicklePersistence…")
        runs["pickle"][str(n)] = await measure_baseline(n, pickle=True)
    progress(f"{SMALL[0]:,} conversations, {SMALL[1]:,} tickets stored…")
    small = await measure_ours(scale_n, SMALL, runs=2)
    progress(f"{BIG[0]:,} conversations, {BIG[1]:,} tickets stored…")
    big = await measure_ours(scale_n, BIG, runs=2)
    progress(f"RSS of {rss_n:,} conversations in progress (child process)…")
    rss = measure_rss(rss_n)
    top = str(sizes[-1])
    ours_top = runs["ours"][top]
    return {
        "runs": runs,
        "scale": {"small": small, "big": big, "n": scale_n},
        "rss": rss,
        "rss_n": rss_n,
        "figures": {
            "ours_ups": {k: round(r.ups) for k, r in runs["ours"].items()},
            "bare_ups": {k: round(r.ups) for k, r in runs["bare"].items()},
            "pickle_ups": {k: round(r.ups) for k, r in runs["pickle"].items()},
            "ratio_vs_bare": round(ours_top.ups / runs["bare"][top].ups, 3),
            "ratio_vs_pickle": round(ours_top.ups / runs["pickle"][top].ups, 2),
            "p50_ms": round(ours_top.percentile_ms(0.50), 3),
            "p99_ms": round(ours_top.percentile_ms(0.99), 3),
            "scale_ratio_50k_vs_1k": round(big.ups / small.ups, 3),
            "rss_mb_10k": round(rss["rss_mb"], 1),
        },
    }


def met(name: str, value: float) -> str:
    target = TARGETS[name]
    ok = value <= target if name in ("p99_ms", "rss_mb_10k") else value >= target
    return "met" if ok else "MISSED"


def table(result: dict[str, Any]) -> str:
    runs, figures = result["runs"], result["figures"]
    lines = [
        f"{'bot':<34}{'N':>6}{'updates/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'ours/this':>11}",
    ]
    names = {"ours": "ours (engine + SQLite WAL)", "bare": "(a) bare PTB ConversationHandler"}
    names["pickle"] = "(b) PTB + PicklePersistence"
    for n in runs["ours"]:
        for bot in ("ours", "bare", "pickle"):
            run = runs[bot][n]
            ratio = "" if bot == "ours" else f"{runs['ours'][n].ups / run.ups:.2f}x"
            lines.append(
                f"{names[bot]:<34}{n:>6}{run.ups:>11,.0f}{run.percentile_ms(0.5):>9.2f}"
                f"{run.percentile_ms(0.99):>9.2f}{ratio:>11}".rstrip()
            )
    scale = result["scale"]
    small, big = scale["small"], scale["big"]
    lines += [
        "",
        f"stored before the replay (N={scale['n']})    updates/s   p50 ms   p99 ms",
        f"  {SMALL[0]:>6,} conversations, {SMALL[1]:>7,} tickets {small.ups:>9,.0f}"
        f"{small.percentile_ms(0.5):>9.2f}{small.percentile_ms(0.99):>9.2f}",
        f"  {BIG[0]:>6,} conversations, {BIG[1]:>7,} tickets {big.ups:>9,.0f}"
        f"{big.percentile_ms(0.5):>9.2f}{big.percentile_ms(0.99):>9.2f}",
        "",
        f"resident memory: {result['rss']['before_mb']:.1f} MB with no conversation,"
        f" {result['rss']['after_mb']:.1f} MB with {result['rss_n']:,} in progress",
        "",
        "target                                   measured   target",
    ]
    rows = [
        ("ours / (a) bare PTB", "ratio_vs_bare", "≥ 0.5"),
        ("ours / (b) PicklePersistence", "ratio_vs_pickle", "≥ 10"),
        ("50k stored / 1k stored", "scale_ratio_50k_vs_1k", "≥ 0.9"),
        ("p99 turn latency (ms)", "p99_ms", "≤ 10"),
        (f"RSS, {result['rss_n']:,} in progress - none (MB)", "rss_mb_10k", "≤ 50"),
    ]
    for label, key, target in rows:
        value = figures[key]
        lines.append(f"  {label:<38}{value:>9}{target:>9}   {met(key, value)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--breakdown", action="store_true", help="only: where one update's time goes, N = 2,000"
    )
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql"), default="sqlite", help="add PostgreSQL runs"
    )
    parser.add_argument(
        "--workers", default="1,2,4", help="worker processes on PostgreSQL, e.g. 1,2,4"
    )
    parser.add_argument(
        "--only-workers", action="store_true", help="with --store postgresql: only those runs"
    )
    args = parser.parse_args(argv)
    if args.rss_child is not None:
        print(json.dumps(asyncio.run(rss_child(args.rss_child))))
        return 0
    if args.breakdown:
        n = 200 if args.quick else 2000
        parts = asyncio.run(measure_breakdown(n))
        bare = asyncio.run(measure_baseline(n, pickle=False))
        print(json.dumps(parts) if args.json else breakdown_table(parts, bare, n))
        return 0
    if args.quick:
        sizes, scale_n, rss_n = (50, 200), 50, 500
    else:
        sizes, scale_n, rss_n = (200, 2000), 500, 10_000
    result: dict[str, Any] = {"figures": {}}
    if not args.only_workers:
        result = asyncio.run(measure(sizes, scale_n, rss_n))
    if args.store == "postgresql":
        from benchmarks.workers import measure_in_flight, measure_workers, workers_table

        counts = [int(c) for c in args.workers.split(",")]
        n, paced = (50, 20) if args.quick else (200, 100)
        result["figures"] |= asyncio.run(measure_workers(counts, n, 10, paced))
        sizes_20k = (2_000, 200) if args.quick else (20_000, 2_000)
        result["figures"] |= asyncio.run(measure_in_flight(*sizes_20k))
    if args.json:
        print(json.dumps(result["figures"]))
    else:
        if not args.only_workers:
            print(table(result))
        if args.store == "postgresql":
            print(workers_table(result["figures"]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
