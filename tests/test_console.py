"""The terminal console's line input: readline where Python has it, plain input where it does not."""

from __future__ import annotations

import builtins
import os
import pty
import select
import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.clock import SHANGHAI, FixedClock
from bot.console import line_reader, run_console
from bot.store.sqlite import SqliteStore
from tests.factories import repo_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_readline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """A stand-in readline module that records how it was set up."""
    calls: list[tuple[str, object]] = []
    module = types.ModuleType("readline")
    module.set_auto_history = lambda on: calls.append(("auto_history", on))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "readline", module)
    return calls


@pytest.fixture
def app() -> Iterator[App]:
    clock = FixedClock(datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI))
    application = build_app(repo_config(), clock=clock, store=SqliteStore.open(":memory:"))
    yield application
    application.close()


def test_line_reader_sets_up_readline_where_python_has_it(
    fake_readline: list[tuple[str, object]],
) -> None:
    assert line_reader() is builtins.input  # input() edits lines once readline is imported
    assert fake_readline == [("auto_history", True)]


def test_without_readline_the_console_reads_with_plain_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "readline", None)  # `import readline` now fails
    with pytest.raises(ImportError):
        import readline  # noqa: F401
    assert line_reader() is builtins.input


def test_the_console_reads_through_line_reader_by_default(
    app: App, fake_readline: list[tuple[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter(["/contact", "/quit"])
    prompts: list[str] = []

    def scripted_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr(builtins, "input", scripted_input)
    written: list[str] = []
    assert run_console(app, write=written.append) == 0
    assert fake_readline == [("auto_history", True)]
    assert prompts == ["> ", "> "]
    assert any("[1]" in line for line in written)  # the bot answered with numbered buttons


def _type_into_console(lines: list[bytes]) -> list[str]:
    """Run line_reader() in a child on a pseudo-terminal, type `lines` one at a time, each when
    its prompt has appeared, and return the repr of every line the child read."""
    program = (
        "from bot.console import line_reader\n"
        "read = line_reader()\n"
        f"for _ in range({len(lines)}): print('got', repr(read('> ')), flush=True)\n"
    )
    env = {**os.environ, "TERM": "xterm", "INPUTRC": os.devnull}
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", program], stdin=child, stdout=child, stderr=child, cwd=REPO, env=env
    )
    os.close(child)
    output = b""
    try:
        for done, keys in enumerate(lines):
            # the prompt after the `done` lines read so far
            while output.count(b"got ") < done or b"> " not in output.rsplit(b"got ", 1)[-1]:
                output += _read(main)
            os.write(main, keys)
        while output.count(b"got ") < len(lines) or not output.endswith(b"\n"):
            output += _read(main)
    finally:
        process.kill()
        process.wait()
        os.close(main)
    text = output.decode(errors="replace")
    return [line.split("got ", 1)[1].strip() for line in text.splitlines() if "got " in line]


def _read(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], 20)
    if not ready:
        raise TimeoutError("the console did not answer within 20 s")
    return os.read(fd, 4096)


def test_arrow_keys_edit_the_line_and_recall_the_history() -> None:
    """Left moves the cursor instead of typing ^[[D; Up brings back the line typed before."""
    left, up = b"\x1b[D", b"\x1b[A"
    assert _type_into_console([b"ab" + left + b"c\r", up + b"\r"]) == ["'acb'", "'acb'"]
