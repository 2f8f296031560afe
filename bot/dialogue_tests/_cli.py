"""`refund-bot dialogues PATH…`: run scripts for QA staff, print failures and flow coverage."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from bot.app import load_dialogue
from bot.dialogue_tests._coverage import THRESHOLD, Coverage, report
from bot.dialogue_tests._runner import ScriptResult, find_scripts, run_script


async def _run_all(scripts: Sequence[Path], base_config: Path) -> list[ScriptResult]:
    # one loop for the whole run; each script builds and shuts down its own bot inside it
    return [await run_script(path, base_config) for path in scripts]


@contextmanager
def _quiet_console() -> Iterator[None]:
    """Keep the bot's log lines off the console while scripts run: the runner captures them per
    step and shows them with a failure, where they explain something; here they would only
    interleave with the report."""
    root = logging.getLogger()
    saved = [(handler, handler.level) for handler in root.handlers]
    for handler, _ in saved:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in saved:
            handler.setLevel(level)


def run_dialogues(
    paths: Sequence[Path],
    base_config: Path,
    *,
    check_coverage: bool = False,
    transcript: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run every script under `paths`; 0 when all pass (and, if asked, coverage is enough)."""
    out = out or sys.stdout
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"dialogues: {path}: no such file or folder", file=sys.stderr)
    scripts = find_scripts([p for p in paths if p.exists()])
    if missing or not scripts:
        if not scripts:
            print("dialogues: no .yaml scripts found", file=sys.stderr)
        return 2
    with _quiet_console():
        results = asyncio.run(_run_all(scripts, base_config))
    coverage = Coverage()
    for result in results:
        coverage.merge(result.coverage)
        print(
            f"{result.verdict:<5}  {result.path}  ({result.steps} steps, {result.seconds:.2f} s)",
            file=out,
        )
        if transcript:
            for line in result.transcript:
                print(f"  {line}", file=out)
    failed = [r for r in results if not r.ok]
    for result in results:
        if result.verdict != "PASS":
            print(f"\n{result.explanation()}", file=out)
    flows, _ = load_dialogue()
    figures = report(coverage, flows)
    print("", file=out)
    for line in figures.lines():
        print(line, file=out)
    total = sum(r.seconds for r in results)
    known = sum(1 for r in results if r.verdict == "XFAIL")
    print(
        f"\n{len(results) - len(failed) - known} passed, {known} known bug(s), "
        f"{len(failed)} failed; {len(results)} script(s) in {total:.1f} s",
        file=out,
    )
    problems = figures.problems() if check_coverage else []
    for problem in problems:
        print(f"coverage: {problem} (CI requires every state and {THRESHOLD:.0%})", file=out)
    return 1 if failed or problems else 0
