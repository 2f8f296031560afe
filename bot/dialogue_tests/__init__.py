"""Scripted dialogue tests (SPEC §5): the YAML format, the runner and flow coverage.

`refund-bot dialogues PATH…` and the pytest plugin in tests/dialogues/ both come through here, so
QA staff and CI run the same scripts the same way. The format is documented in
docs/dialogue-tests.md."""

from bot.dialogue_tests._cli import run_dialogues
from bot.dialogue_tests._coverage import THRESHOLD, Coverage, Report, report
from bot.dialogue_tests._runner import (
    ScriptResult,
    StepFailure,
    find_scripts,
    run_script,
    run_script_sync,
)
from bot.dialogue_tests._script import Script, ScriptError, load_script, parse_script
from bot.dialogue_tests._session import RUNNER_CONFIG, Session

__all__ = [
    "RUNNER_CONFIG",
    "THRESHOLD",
    "Coverage",
    "Report",
    "Script",
    "ScriptError",
    "ScriptResult",
    "Session",
    "StepFailure",
    "find_scripts",
    "load_script",
    "parse_script",
    "report",
    "run_dialogues",
    "run_script",
    "run_script_sync",
]
