"""Runs one scripted dialogue step by step (bot/dialogue_tests/_session.py does the steps) and
reports the first step whose expectations do not hold, with everything the bot did in it."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config
from bot.dialogue_tests._coverage import Coverage
from bot.dialogue_tests._expect import Observation, check
from bot.dialogue_tests._script import Script, ScriptError, Step, load_script
from bot.dialogue_tests._session import (
    SETTLE_SECONDS,
    Session,
    StepError,
    script_config,
    script_orders,
)
from bot.domain import Order


class StepFailure(Exception):
    """A step whose expectations do not hold (or that could not be done), with what happened."""

    def __init__(
        self,
        path: Path,
        index: int,
        total: int,
        step: Step,
        problems: list[str],
        seen: Observation | None,
    ) -> None:
        self.path, self.index, self.step = path, index, step
        self.problems, self.seen = problems, seen
        head = f"{path}: step {index} of {total} ({step.describe()}) failed"
        lines = [head]
        if step.note:
            lines.append(f"  note: {step.note}")
        lines.extend(f"  - {p}" for p in problems)
        if seen is not None:
            lines.extend(seen.render())
        super().__init__("\n".join(lines))


# -- logging and errors during a run ---------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured() -> Iterator[_Capture]:
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)


# -- running a script ------------------------------------------------------------------------


@dataclass
class ScriptResult:
    """The result of one script: passed, or the failure text; its coverage either way."""

    path: Path
    coverage: Coverage
    failure: str | None = None
    seconds: float = 0.0
    steps: int = 0
    transcript: list[str] = field(default_factory=list)  # every step and what the bot did
    known_bug: str | None = None  # the script's `known_bug`
    invalid: bool = False  # the script cannot run: not the format, or bad orders or config

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def verdict(self) -> str:
        """PASS, FAIL, XFAIL (a known bug still shows) or XPASS (a known bug no longer shows)."""
        if self.known_bug is None or self.invalid:
            return "PASS" if self.passed else "FAIL"
        return "XPASS" if self.passed else "XFAIL"

    @property
    def ok(self) -> bool:
        """Whether CI is content: passed, or failed the way its known bug says."""
        return self.verdict in ("PASS", "XFAIL")

    def explanation(self) -> str:
        """What to print for a result that is not a plain pass."""
        if self.verdict == "XPASS":
            return (
                f"{self.path}: passes, but is marked known_bug ({self.known_bug}); "
                "if the bug is fixed, remove known_bug"
            )
        if self.verdict == "XFAIL":
            return f"{self.path}: known bug: {self.known_bug}\n{self.failure}"
        return self.failure or ""


async def run_script(path: Path, base_config: Path) -> ScriptResult:
    """Run one script; a failing or invalid script is reported in the result, not raised."""
    started = time.perf_counter()
    result = ScriptResult(path, Coverage())
    try:
        script = load_script(path)
        result.steps = len(script.steps)
        result.known_bug = script.known_bug
        with tempfile.TemporaryDirectory(prefix="dialogue-") as workdir:
            config = script_config(script, path, base_config, Path(workdir))
            orders = script_orders(script, path)
            await _run_steps(script, path, config, orders, result.coverage, result.transcript)
    except ScriptError as exc:
        result.failure = str(exc)
        result.invalid = True
    except StepFailure as exc:
        result.failure = str(exc)
    except Exception:
        # e.g. the bot failing to start: one script's crash must not end a QA run of many
        result.failure = f"{path}: the run crashed\n{traceback.format_exc()}"
    result.seconds = time.perf_counter() - started
    return result


async def _run_steps(
    script: Script,
    path: Path,
    config: Config,
    orders: list[Order],
    coverage: Coverage,
    transcript: list[str],
) -> None:
    session = Session(script, config, coverage)
    total = len(script.steps)
    with _captured() as capture:
        await session.start(orders)
        try:
            for index, step in enumerate(script.steps, start=1):
                mark, logs_mark, errors_mark = (
                    len(session.tg.calls),
                    len(capture.records),
                    len(session.errors),
                )
                problem: str | None = None
                try:
                    await session.perform(step)
                except StepError as exc:
                    problem = f"could not do the step: {exc}"
                except TimeoutError:
                    problem = f"the bot did not finish the step within {SETTLE_SECONDS:.0f} s"
                seen = session.observe(
                    mark, capture.records[logs_mark:], session.errors[errors_mark:]
                )
                transcript.append(f"{index}. {step.describe()}")
                transcript.extend(seen.render()[1:])
                problems = [problem] if problem else []
                if seen.errors:
                    problems.append("the bot raised or logged an error")
                if problem is None and step.expect is not None:
                    problems.extend(check(step.expect, seen, session))
                if problems:
                    raise StepFailure(path, index, total, step, problems, seen)
        finally:
            await session.stop()


def run_script_sync(path: Path, base_config: Path) -> ScriptResult:
    """Run one script in its own event loop (pytest items and the CLI)."""
    return asyncio.run(run_script(path, base_config))


def find_scripts(paths: list[Path]) -> list[Path]:
    """The .yaml scripts of files and folders (recursively), sorted, each once."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.yaml") if p.is_file()))
        else:
            found.append(path)
    return list(dict.fromkeys(found))
