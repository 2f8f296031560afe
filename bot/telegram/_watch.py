"""Watching `run`: Prometheus metrics, liveness and readiness on a port of their own, and one log
line per handled event.

The HTTP server is a small WSGI server in a daemon thread, so it answers the same way in polling and
webhook mode (PTB's webhook server is not touched). The store's figures (outbox backlog, tickets by
status, overdue reviews and payouts, open handoffs) are read at scrape time; the counters and the
latency histogram are fed by two hooks: `counted` around the update handler and `turn` after a
turn, and Bot API calls are counted by a transport wrapper (`MeteredRequest`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from telegram import Bot, Update
from telegram.error import TelegramError
from telegram.request import BaseRequest

from bot.clock import Clock, to_local
from bot.config import MetricsConfig
from bot.engine import TurnResult
from bot.store import Store
from bot.telegram._parse import Incoming
from bot.telegram._updates import Delegating

log = logging.getLogger("bot.events")

TURN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HANDOFF = ("handoff", "with_agent")
C = TypeVar("C")
Handler = Callable[[Update, C], Coroutine[Any, Any, None]]  # the flow state of a chat a person has


def update_kind(update: Update) -> str:
    """message, callback_query, edited_message...: the update's one field besides its id."""
    raw = update.to_dict()
    return next((k for k in raw if k != "update_id"), "unknown")


class _StoreFigures(Collector):
    """The store's figures, read at scrape time in one unit of work."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("refund_bot_store_up", "1 if the store answered this scrape")
        now = self.clock.now()
        try:
            with self.store.unit_of_work() as uow:
                backlog = uow.backlog(to_local(now).date())
                handoffs = len(uow.conversations_in(*HANDOFF))
        except Exception as exc:
            log.warning("metrics: the store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "refund_bot_outbox_pending", "messages committed but not sent", backlog.outbox_pending
        )
        oldest = backlog.outbox_oldest
        yield GaugeMetricFamily(
            "refund_bot_outbox_oldest_pending_seconds",
            "age of the oldest unsent message (0: none)",
            0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0),
        )
        tickets = GaugeMetricFamily("refund_bot_tickets", "tickets by status", labels=["status"])
        for status, count in sorted(backlog.tickets_by_status.items()):
            tickets.add_metric([status], count)
        yield tickets
        yield GaugeMetricFamily(
            "refund_bot_overdue_reviews", "undecided past review_due", backlog.overdue_reviews
        )
        yield GaugeMetricFamily(
            "refund_bot_overdue_payouts", "unpaid past payout_due", backlog.overdue_payouts
        )
        yield GaugeMetricFamily("refund_bot_handoffs_open", "chats a person has now", handoffs)


class Watch:
    """The metrics of one running bot and its readiness."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: MetricsConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.monotonic = monotonic
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "refund_bot_updates", "updates handled by kind", ["kind"], registry=self.registry
        )
        self.turn_seconds = Histogram(
            "refund_bot_turn_seconds",
            "one customer turn: engine, commit, replies sent",
            buckets=TURN_BUCKETS,
            registry=self.registry,
        )
        self.api_calls = Counter(
            "refund_bot_bot_api_calls",
            "Bot API calls by method",
            ["method"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "refund_bot_bot_api_errors",
            "Bot API calls that failed (no answer, or not ok) by method",
            ["method"],
            registry=self.registry,
        )
        self.registry.register(_StoreFigures(store, clock))
        self.telegram_at: float | None = None  # monotonic time of Telegram's latest answer

    # -- hooks -----------------------------------------------------------------------------

    def counted(self, handler: Handler[C]) -> Handler[C]:
        """The update handler, counting each update by kind first."""

        async def handle(update: Update, context: C) -> None:
            self.updates.labels(update_kind(update)).inc()
            await handler(update, context)

        return handle

    def turn(self, incoming: Incoming, result: TurnResult, seconds: float) -> None:
        """After a customer's turn: the latency histogram and one log line."""
        self.turn_seconds.observe(seconds)
        ticket = next((str(t) for e in result.effects if (t := getattr(e, "ticket_no", None))), "-")
        state = f"{result.flow}.{result.state}" if result.flow else "-"
        log.info(
            "update %s chat %s state %s ticket %s %.1f ms%s",
            incoming.update_id,
            incoming.chat_id,
            state,
            ticket,
            seconds * 1000,
            " (duplicate)" if result.duplicate else "",
            extra={
                "update_id": incoming.update_id,
                "chat": incoming.chat_id,
                "state": state,
                "ticket": ticket,
                "duration_ms": round(seconds * 1000, 3),
                "duplicate": result.duplicate,
            },
        )

    def api_call(self, method: str, answered: bool, ok: bool) -> None:
        """A Bot API call ended: Telegram answered (any HTTP status) and whether it was ok."""
        self.api_calls.labels(method).inc()
        if answered:
            self.telegram_at = self.monotonic()
        if not ok:
            self.api_errors.labels(method).inc()

    async def probe_job(self, context: Any) -> None:
        """Repeating job: ask Telegram (getMe) when nothing was heard from it for a while."""
        if self._telegram_fresh(self.settings.telegram_fresh_seconds / 2):
            return
        bot: Bot = context.bot
        try:
            await bot.get_me()
        except TelegramError as exc:
            log.warning("Telegram did not answer getMe: %s", exc)

    # -- health ------------------------------------------------------------------------------

    def _telegram_fresh(self, within: float) -> bool:
        return self.telegram_at is not None and self.monotonic() - self.telegram_at <= within

    def ready(self) -> tuple[bool, str]:
        """Ready: the store answers and Telegram answered within telegram_fresh_seconds."""
        problems = []
        try:
            with self.store.unit_of_work() as uow:
                uow.agent_names()  # any read: the store answers
        except Exception as exc:
            problems.append(f"store: {exc}")
        if not self._telegram_fresh(self.settings.telegram_fresh_seconds):
            problems.append("telegram: no answer recently")
        return not problems, "; ".join(problems) or "ready"

    def serve(self) -> MetricsServer:
        """Start the HTTP endpoint in a daemon thread."""
        return MetricsServer(self, self.settings.listen, self.settings.port)


class _Threads(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not events
        pass


class MetricsServer:
    """/metrics, /healthz and /readyz on their own port."""

    def __init__(self, watch: Watch, listen: str, port: int) -> None:
        self.watch = watch
        self._metrics = make_wsgi_app(watch.registry)
        self._server = make_server(
            listen, port, self._app, server_class=_Threads, handler_class=_Quiet
        )
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            answer: Iterable[bytes] = self._metrics(environ, start_response)
            return answer
        if path == "/healthz":
            status, body = "200 OK", "ok"
        elif path == "/readyz":
            ready, detail = self.watch.ready()
            status, body = ("200 OK" if ready else "503 Service Unavailable"), detail
        else:
            status, body = "404 Not Found", "not found: /metrics, /healthz, /readyz"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body.encode() + b"\n"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class MeteredRequest(Delegating):
    """A Bot API transport that counts calls and failures by method (and when Telegram last
    answered, for readiness); the inner transport does the work."""

    def __init__(self, inner: BaseRequest, watch: Watch) -> None:
        super().__init__(inner)
        self.watch = watch

    @staticmethod
    def _method(url: str) -> str:
        # a file download's URL ends in the file's path: one label for all of them
        return "download" if "/file/" in url else url.rsplit("/", 1)[-1]

    def answered(self, url: str, code: int, body: bytes) -> tuple[int, bytes]:
        # even a 400 is an answer: Telegram is reachable
        self.watch.api_call(self._method(url), answered=True, ok=code < 400)
        return code, body

    def failed(self, url: str) -> None:
        self.watch.api_call(self._method(url), answered=False, ok=False)
