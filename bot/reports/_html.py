"""The report as one self-contained HTML page: inline CSS and SVG charts drawn here, no script and
nothing fetched at view time. Every figure is also in the page's tables, each cell tagged with
`data-figure` (its dotted name) and `data-value` (its JSON value), so a test can compare the page a
browser rendered with the JSON report."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from bot.reports._render import flatten, heading, shown

BAR = "#3b7dd8"
GOOD = "#2e9d5b"
WIDTH = 720


def _bars_vertical(chart_id: str, title: str, points: list[tuple[str, float]]) -> str:
    """A column chart: one <rect class="bar"> per point, labelled every few columns."""
    height, top, bottom = 220, 20, 40
    peak = max((v for _, v in points), default=0) or 1
    step = (WIDTH - 40) / max(len(points), 1)
    parts = []
    every = max(len(points) // 10, 1)
    for i, (label, value) in enumerate(points):
        h = (height - top - bottom) * value / peak
        x = 30 + i * step
        y = height - bottom - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}"'
            f' height="{h:.1f}" fill="{BAR}" data-label="{escape(label)}" data-value="{value:g}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="10">'
                f"{escape(label[5:])}</text>"
            )
    parts.append(f'<text x="2" y="{top}" font-size="10">{peak:g}</text>')
    return _svg(chart_id, title, height, parts)


def _bars_horizontal(
    chart_id: str, title: str, points: list[tuple[str, float]], share: bool = False
) -> str:
    """Horizontal bars with their values: the funnel, the service levels (shares out of 1)."""
    row, left = 28, 190
    height = row * len(points) + 20
    peak = 1.0 if share else (max((v for _, v in points), default=0) or 1)
    parts = []
    for i, (label, value) in enumerate(points):
        w = (WIDTH - left - 80) * value / peak
        y = 10 + i * row
        text = f"{value:.1%}" if share else f"{value:g}"
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{escape(label)}</text>')
        parts.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{row - 8}"'
            f' fill="{GOOD if share else BAR}" data-label="{escape(label)}"'
            f' data-value="{value:g}"></rect>'
        )
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}" font-size="12">{text}</text>')
    return _svg(chart_id, title, height, parts)


def _svg(chart_id: str, title: str, height: int, parts: list[str]) -> str:
    return (
        f'<figure><figcaption>{escape(title)}</figcaption><svg id="{chart_id}"'
        f' xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        + "".join(parts)
        + "</svg></figure>"
    )


def as_html(figures: dict[str, Any]) -> str:
    period = figures["period"]
    service = figures["service"]
    levels = [
        (f"reviews in time ({k})", v["share"])
        for k, v in service["reviews_within_deadline"].items()
        if v["share"] is not None
    ]
    if service["payouts_within_window"]["share"] is not None:
        levels.append(("payouts in window", service["payouts_within_window"]["share"]))
    charts = [
        _bars_vertical(
            "chart-volume",
            "Tickets per day",
            [(d, float(n)) for d, n in figures["volume"]["per_day"].items()],
        ),
        _bars_horizontal(
            "chart-funnel",
            "Funnel: conversations, then tickets",
            [(k, float(v)) for k, v in figures["funnel"].items()],
        ),
        _bars_horizontal("chart-service", "Service levels", levels, share=True),
    ]
    sections: dict[str, list[str]] = {}
    for name, value in flatten({k: v for k, v in figures.items() if k != "period"}):
        head, _, rest = name.partition(".")
        sections.setdefault(head, []).append(
            f'<tr><th>{escape(rest or head)}</th><td data-figure="{escape(name)}"'
            f" data-value='{escape(json.dumps(value, ensure_ascii=False))}'>"
            f"{escape(shown(name, value))}</td></tr>"
        )
    tables = "".join(
        f"<section><h2>{escape(heading(head))}</h2><table>{''.join(rows)}</table></section>"
        for head, rows in sections.items()
    )
    title = f"Refund report {period['from']} – {period['to']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ text-align: left; padding: 2px 12px; border-bottom: 1px solid #eee; }}
th {{ font-weight: normal; color: #555; }}
figure {{ margin: 1em 0 2em; }} figcaption {{ font-weight: bold; margin-bottom: .5em; }}
section {{ display: inline-block; vertical-align: top; margin-right: 2em; }}
</style></head>
<body>
<h1>{escape(title)}</h1>
<p>Tickets created in the period (Asia/Shanghai days); overdue as of {escape(period["today"])}.
Times in Chinese working days.</p>
{"".join(charts)}
{tables}
</body></html>
"""
