"""The report's one dictionary of figures as text, CSV or JSON (HTML: _html.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from bot.money import format_fen


def flatten(figures: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every figure, in the dictionary's order."""
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, f"{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from flatten(item, f"{name}.{i}.")
        else:
            yield name, value


def shown(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.startswith("money_fen."):
        return format_fen(int(value))
    if isinstance(value, float) and (name.endswith(("share", "rate"))):
        return f"{value:.1%}"
    return str(value)


def heading(section: str) -> str:
    """A section's title: "money_fen" is shown in yuan, as "Money"."""
    return "Money" if section == "money_fen" else section.replace("_", " ").capitalize()


def as_json(figures: dict[str, Any]) -> str:
    return json.dumps(figures, ensure_ascii=False, indent=2) + "\n"


def as_csv(figures: dict[str, Any]) -> str:
    """One row per figure: figure,value (money in fen, shares as fractions: for spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "value"])
    for name, value in flatten(figures):
        writer.writerow([name, "" if value is None else value])
    return out.getvalue()


def as_text(figures: dict[str, Any]) -> str:
    """Sections as the report reads them; every figure of the JSON, money in yuan."""
    lines = [
        f"Refund report {figures['period']['from']} – {figures['period']['to']}"
        f" (tickets created in the period; overdue as of {figures['period']['today']})"
    ]
    section = ""
    for name, value in flatten({k: v for k, v in figures.items() if k != "period"}):
        if name.startswith("volume.per_day.") and value == 0:
            continue  # a quiet day: the CSV, JSON and HTML forms list every day
        head, _, rest = name.partition(".")
        if head != section:
            section = head
            lines.append("")
            lines.append(heading(head))
        lines.append(f"  {rest or head}: {shown(name, value)}")
    return "\n".join(lines) + "\n"
