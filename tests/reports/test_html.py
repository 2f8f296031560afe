"""The HTML report in a real headless browser (Debian's chromium): it renders, its charts are
there, and every number on the page is the JSON report's."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bot.calendar import WorkingCalendar
from bot.reports import as_html, build, flatten
from bot.store import Store

from .conftest import FROM, NOW, TO

INSTALL = "apt-get update && apt-get install -y chromium"


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"the HTML report is checked in Debian's chromium, which is missing: {INSTALL}")
    return found


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = page.parent / "chromium-profile"
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # as root in CI containers
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class Page(HTMLParser):
    """What the rendered DOM holds: figures by name, charts and their bars."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, Any] = {}
        self.charts: dict[str, int] = {}
        self._chart: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-figure" in a:
            self.figures[str(a["data-figure"])] = json.loads(str(a["data-value"]))
        if tag == "svg":
            self._chart = a.get("id")
            self.charts[str(self._chart)] = 0
        if tag == "rect" and self._chart is not None and a.get("class") == "bar":
            self.charts[self._chart] += 1
        self.links.extend(str(a[k]) for k in ("src", "href") if a.get(k))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None


def test_the_html_report_renders_with_its_charts_and_the_json_numbers(
    histories: Store, tmp_path: Path
) -> None:
    figures = build(histories, WorkingCalendar((), ()), FROM, TO, NOW)
    page = tmp_path / "report.html"
    page.write_text(as_html(figures), encoding="utf-8")

    dom = Page()
    dom.feed(browse(page, "--dump-dom").stdout)
    assert dom.charts == {"chart-volume": 21, "chart-funnel": 6, "chart-service": 3}
    expected = json.loads(
        json.dumps(dict(flatten({k: v for k, v in figures.items() if k != "period"})))
    )
    assert dom.figures == expected
    assert dom.figures["money_fen.paid"] == 5_000
    assert dom.links == []  # nothing to fetch at view time

    shot = tmp_path / "report.png"
    browse(page, f"--screenshot={shot}", "--window-size=1000,1600")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # painted: charts and tables, not a blank page
