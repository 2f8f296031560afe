"""Collect every tests/dialogues/**/*.yaml as one test item named after the file.

The item runs the script through bot.dialogue_tests (the runner `refund-bot dialogues` uses) and,
when it fails, shows the runner's account of the step instead of a Python traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dialogue_tests import run_script_sync
from tests.dialogues.corpus import CONFIG, results


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".yaml":
        return DialogueFile.from_parent(parent, path=file_path)
    return None


class DialogueFailed(Exception):
    """A script that failed: the runner's message says which step, expected what, saw what."""


class DialogueFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield DialogueItem.from_parent(self, name=self.path.stem)


class DialogueItem(pytest.Item):
    def runtest(self) -> None:
        result = run_script_sync(self.path, CONFIG)
        results(self.config)[self.path] = result
        if result.verdict == "XFAIL":
            # an open bug the script shows on purpose: reported as xfailed, with its step
            pytest.xfail(f"known bug: {result.known_bug}")
        if not result.ok:
            raise DialogueFailed(result.explanation())

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: str | None = None,
    ) -> str:
        if isinstance(excinfo.value, DialogueFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"dialogue {self.path.relative_to(self.config.rootpath)}"
