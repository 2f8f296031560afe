"""Texts built from several catalog entries: the pre-check, breakdowns, timelines, legal basis."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from bot.clock import to_local
from bot.config import Config
from bot.domain import Order, Outcome, Quote, Ticket, TicketEvent
from bot.engine import Turn


class Speaker(Protocol):
    """Whom texts are rendered for: a customer's Turn, or the agent desk (agents' locale)."""

    @property
    def locale(self) -> str: ...

    @property
    def config(self) -> Config: ...

    def t(self, key: str, **params: Any) -> str: ...


def day(value: date | None) -> str:
    return value.isoformat() if value else "—"


def moment(value: datetime) -> str:
    return to_local(value).strftime("%Y-%m-%d %H:%M")


def order_label(turn: Speaker, order: Order) -> str:
    return turn.t(
        "apply.order_label",
        product=order.product_name,
        paid_fen=order.cash_paid_fen,
        paid_on=day(to_local(order.paid_at).date()),
        order_id=order.order_id,
    )


def reason_label(turn: Speaker, reason: str, sub_reason: str | None) -> str:
    text = turn.t(f"reason.{reason}")
    if sub_reason:
        text += " · " + turn.t(f"sub_reason.{sub_reason}")
    return text


def _explanation_params(turn: Speaker, quote: Quote) -> dict[str, Any]:
    params: dict[str, Any] = dict(quote.explanation_params)
    if "category" in params:
        params["category"] = turn.t(f"category.{params['category']}")
    return params


def explanation(turn: Speaker, quote: Quote) -> str:
    params = _explanation_params(turn, quote)
    return "\n".join(turn.t(key, **params) for key in quote.explanation)


def breakdown(turn: Speaker, quote: Quote) -> str:
    lines = [
        turn.t(line.key, amount_fen=line.amount_fen, **line.params) for line in quote.breakdown
    ]
    lines.append(turn.t("breakdown.total", amount_fen=quote.amount_fen))
    return "\n".join(lines)


def legal(turn: Speaker, refs: tuple[str, ...]) -> str:
    if not refs:
        return ""
    lines = []
    for ref in refs:
        entry = turn.config.legal[ref]
        lines.append(
            turn.t(
                "legal.line",
                cite=entry.cite.get(turn.locale, entry.cite["zh-CN"]),
                summary=entry.summary.get(turn.locale, entry.summary["zh-CN"]),
            )
        )
    return turn.t("legal.heading") + "\n" + "\n".join(lines)


def basis(turn: Speaker, refs: tuple[str, ...]) -> str:
    """The legal basis of a decision, each article once; one with no statute says so."""
    if refs:
        return legal(turn, tuple(dict.fromkeys(refs)))
    return turn.t("legal.heading") + "\n" + turn.t("legal.no_statute")


def deadline(turn: Speaker, quote: Quote) -> str:
    low, high = quote.payout_window
    if quote.outcome is Outcome.AUTO_APPROVE:
        return turn.t("precheck.deadline.auto", low=low, high=high)
    if quote.outcome is Outcome.REFUSED:
        return ""
    return turn.t("precheck.deadline.review", review_due=day(quote.review_due), low=low, high=high)


def precheck(turn: Speaker, quote: Quote) -> dict[str, Any]:
    """Parameters of the pre-check message."""
    refused = quote.outcome is Outcome.REFUSED
    sections = [
        explanation(turn, quote),
        "" if refused else breakdown(turn, quote),
        deadline(turn, quote),
        legal(turn, quote.legal_refs),
    ]
    return {
        "outcome": turn.t(f"precheck.outcome.{quote.outcome.value}"),
        "details": "\n\n".join(s for s in sections if s),
    }


STATUS_KEYS = "status.name."


def status_name(turn: Speaker, ticket: Ticket) -> str:
    return turn.t(STATUS_KEYS + ticket.status.value)


def timeline(turn: Turn, events: list[TicketEvent]) -> str:
    lines = []
    for e in events:
        key = f"timeline.{e.kind}"
        params = {k: v for k, v in e.data.items() if isinstance(v, str | int)}
        catalog = turn.services.catalog
        # an event recorded without a detail its text names still shows, with the detail blank
        text = catalog.text(turn.locale, key, params, missing="") if catalog.has(key) else e.kind
        lines.append(f"{moment(e.at)}  {text}")
    return "\n".join(lines)
