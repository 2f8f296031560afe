"""`run`'s log lines: JSON lines carry the event's fields; the text format reads as a line."""

from __future__ import annotations

import json
import logging

import pytest

from bot.config import LogConfig
from bot.logs import JsonLines, configure


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("bot.events", logging.INFO, __file__, 1, "update %s", (7,), None)
    rec.__dict__.update(extra)
    return rec


def test_a_json_line_has_the_event_fields() -> None:
    line = JsonLines().format(record(update_id=7, chat=1001, state="apply.precheck", ticket="-"))
    parsed = json.loads(line)
    assert parsed["message"] == "update 7"
    assert (parsed["update_id"], parsed["chat"], parsed["state"]) == (7, 1001, "apply.precheck")
    assert parsed["level"] == "INFO" and parsed["logger"] == "bot.events"
    assert "\n" not in line


def test_configure_installs_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure(LogConfig(format="json"))
        logging.getLogger("bot.run").info("hello %s", "there")
        assert root.level == logging.INFO
        (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert line["message"] == "hello there"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
