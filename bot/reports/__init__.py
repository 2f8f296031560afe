"""Reports, the finance export, reconciliation and one ticket's history (issue 16)."""

from bot.reports._figures import build, percentile, period
from bot.reports._finance import (
    EXPORT_COLUMNS,
    Reconciled,
    StatementError,
    export_csv,
    history_text,
    read_statement,
    reconcile,
    ticket_history,
)
from bot.reports._html import as_html
from bot.reports._render import as_csv, as_json, as_text, flatten

__all__ = [
    "EXPORT_COLUMNS",
    "Reconciled",
    "StatementError",
    "as_csv",
    "as_html",
    "as_json",
    "as_text",
    "build",
    "export_csv",
    "flatten",
    "history_text",
    "percentile",
    "period",
    "read_statement",
    "reconcile",
    "ticket_history",
]
