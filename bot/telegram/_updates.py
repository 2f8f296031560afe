"""Updates python-telegram-bot cannot parse: skipped one by one, never the whole batch.

PTB parses a getUpdates batch as a whole: one update it cannot read (an older self-hosted Bot API
server sends poll messages without fields PTB now requires) fails the batch, the offset never moves
and polling fetches the same batch forever. The getUpdates transport here checks each update first
and replaces one that cannot be parsed by its bare id: the offset moves on, everyone else is served,
and the skipped update is logged once with its id and kind and counted. Webhook mode already
answers 400 for such an update; its traceback per retry becomes one line."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)

# PTB's webhook server logs an unparseable update at CRITICAL with a traceback, per delivery
WEBHOOK_LOGGER = "telegram.ext.Updater"
_WEBHOOK_PARSE_FAILURE = "Something went wrong processing the data received from Telegram"


class SkippedUpdates:
    """How many updates could not be parsed (a metric; the log says which)."""

    def __init__(self) -> None:
        self.count = 0


def update_kind(raw: dict[str, Any]) -> str:
    """The update's kind: its one field besides the id ("message", "poll"...)."""
    return next((k for k in raw if k != "update_id"), "unknown")


def readable(raw: Any, skipped: SkippedUpdates) -> Any:
    """The update as it came, or only its id when python-telegram-bot cannot parse it."""
    if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
        return raw  # not an update at all: PTB's own error handling applies
    try:
        Update.de_json(raw, None)
    except Exception as exc:
        skipped.count += 1
        log.error(
            "update %s (%s) cannot be parsed and is skipped: %s",
            raw["update_id"],
            update_kind(raw),
            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
        )
        return {"update_id": raw["update_id"]}
    return raw


class Delegating(BaseRequest):
    """A Bot API transport around another one: the inner transport does the work; a subclass
    looks at what came back (`answered`) or at a call that failed (`failed`)."""

    def __init__(self, inner: BaseRequest) -> None:
        self.inner = inner

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            code, body = await self.inner.do_request(
                url,
                method,
                request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except Exception:
            self.failed(url)
            raise
        return self.answered(url, code, body)

    def answered(self, url: str, code: int, body: bytes) -> tuple[int, bytes]:
        return code, body

    def failed(self, url: str) -> None:
        """The call got no answer (the exception goes on to the caller)."""


class TolerantUpdates(Delegating):
    """The getUpdates transport: the inner one's answer with unparseable updates replaced."""

    def __init__(self, inner: BaseRequest, skipped: SkippedUpdates) -> None:
        super().__init__(inner)
        self.skipped = skipped

    def answered(self, url: str, code: int, body: bytes) -> tuple[int, bytes]:
        if not url.endswith("/getUpdates"):
            return code, body
        try:
            answer = json.loads(body)
        except ValueError:
            return code, body
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, list):
            return code, body
        # each update is parsed here and again by PTB (~0.1 ms each, polling only): PTB offers no
        # hook between the answer and its all-or-nothing parse of the batch
        checked = [readable(raw, self.skipped) for raw in result]
        if checked == result:
            return code, body
        answer["result"] = checked
        return code, json.dumps(answer).encode()


class OneLineWebhookParseFailures(logging.Filter):
    """PTB's webhook server answers 400 to an update it cannot parse and logs a traceback each
    time Telegram retries it: one line instead, and the same failure once per `every` seconds."""

    def __init__(self, skipped: SkippedUpdates, every: float = 600.0) -> None:
        super().__init__()
        self.skipped = skipped
        self.every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_WEBHOOK_PARSE_FAILURE):
            return True
        error = record.exc_info[1] if record.exc_info else None
        # logging keeps a lone mapping argument as the args themselves
        args = record.args
        data = (
            args if isinstance(args, dict) else args[0] if isinstance(args, tuple) and args else {}
        )
        raw = data if isinstance(data, dict) else {}
        what = f"update {raw.get('update_id', '?')} ({update_kind(raw)})"
        reason = str(error).splitlines()[0][:200] if error is not None and str(error) else ""
        self.skipped.count += 1
        now = time.monotonic()
        if now - self._last.get(what, -self.every) < self.every:
            return False
        self._last[what] = now
        record.msg = "webhook: %s cannot be parsed; answered 400: %s"
        record.args = (what, reason)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.ERROR, "ERROR"
        return True


def quiet_webhook_parse_failures(skipped: SkippedUpdates) -> None:
    """Install the one-line filter on PTB's webhook logger (replacing an earlier bot's)."""
    logger = logging.getLogger(WEBHOOK_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, OneLineWebhookParseFailures)]:
        logger.removeFilter(old)
    logger.addFilter(OneLineWebhookParseFailures(skipped))
