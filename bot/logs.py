"""Logging of `refund-bot run`: readable lines, or one JSON object per line for log collectors.

The event lines (logger `bot.events`) carry update_id, chat, state, ticket and duration_ms as
fields of their own in JSON; in text they are in the message."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from bot.config import LogConfig

# what a record carries besides the standard attributes (see bot/telegram/_watch.py)
EVENT_FIELDS = ("update_id", "chat", "state", "ticket", "duration_ms", "duplicate")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the event fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(settings: LogConfig, verbose: bool = False) -> None:
    """The root logger as `log` in config.yaml says (-v: DEBUG)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else settings.level)
    # libraries' chatter stays at WARNING (httpx logs every request at INFO)
    for noisy in ("httpx", "transitions", "apscheduler", "telegram"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
