"""For staff and finance: one ticket's whole history, the tickets export, and the payment
channel's refund statement reconciled against the refunds ledger."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.domain import RefundState, Refusal, TicketStatus
from bot.engine import Reply, turn_locale
from bot.i18n import Catalog
from bot.money import parse_yuan
from bot.reports._figures import period
from bot.store import EventFacts, OutboxMessage, Store, UnitOfWork
from bot.tickets import mark_refunded


def yuan(fen: int | None) -> str:
    """Plain yuan for a spreadsheet: 9167 -> '91.67' (no sign, no separator)."""
    return "" if fen is None else f"{fen // 100}.{fen % 100:02d}"


# --- one ticket ----------------------------------------------------------------------------------


def ticket_history(store: Store, ticket_no: str) -> dict[str, Any] | None:
    """Everything stored about a ticket, as JSON-ready values (None: no such ticket)."""
    with store.unit_of_work() as uow:
        ticket = uow.ticket(ticket_no)
        if ticket is None:
            return None
        order = uow.order(ticket.order_id)
        customer = uow.customer(ticket.customer_id)
        refunds = [r for r in uow.refunds_of_order(ticket.order_id) if r.ticket_no == ticket_no]
        return {
            "ticket": ticket.model_dump(mode="json"),
            "policy_fingerprint": ticket.quote.policy_fingerprint,
            "customer": None if customer is None else customer.model_dump(mode="json"),
            "order": None if order is None else order.model_dump(mode="json"),
            "events": [e.model_dump(mode="json") for e in uow.events_of(ticket_no)],
            "evidence": [e.model_dump(mode="json") for e in uow.evidence_of(ticket_no)],
            "refunds": [r.model_dump(mode="json") for r in refunds],
            "compensations": [
                c.model_dump(mode="json") for c in uow.compensations_of_ticket(ticket_no)
            ],
        }


def history_text(history: dict[str, Any]) -> str:
    t = history["ticket"]
    lines = [
        f"{t['ticket_no']}  {t['status']}  order {t['order_id']}  customer {t['customer_id']}",
        f"reason {t['reason']}/{t['sub_reason'] or '-'}  priority {t['priority']}",
        f"requested ¥{yuan(t['requested_fen'])}  approved ¥{yuan(t['approved_fen']) or '-'}",
        f"review due {t['review_due'] or '-'}  payout due {t['payout_due'] or '-'}",
        f"policy fingerprint {history['policy_fingerprint'] or '(not recorded)'}",
        "",
        "events:",
    ]
    for e in history["events"]:
        move = f" {e['from_status'] or ''}→{e['to_status']}" if e["to_status"] else ""
        data = json.dumps(e["data"], ensure_ascii=False) if e["data"] else ""
        lines.append(f"  {e['at']}  {e['actor']}  {e['kind']}{move}  {data}".rstrip())
    lines.append("evidence:")
    for ev in history["evidence"]:
        lines.append(f"  {ev['added_at']}  {ev['kind']}  {ev['file_unique_id']}  {ev['sha256']}")
    lines.append("payouts:")
    for r in history["refunds"] + history["compensations"]:
        lines.append(f"  {r['idempotency_key']}  ¥{yuan(r['amount_fen'])}  {r['state']}")
    return "\n".join(lines) + "\n"


# --- the finance export --------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "ticket_no",
    "created_at",
    "order_id",
    "customer_id",
    "channel",
    "reason",
    "sub_reason",
    "ticket_status",  # not "status": in a statement that column is the payout's
    "requested",
    "approved",
    "decision",
    "decided_at",
    "decided_by",
    "payout_key",
    "amount",
    "payout_state",
    "approved_at",
    "approved_by",
    "paid_at",
    "paid_by",
)


def _first(trail: list[EventFacts], *kinds: str) -> EventFacts | None:
    return next((e for e in trail if e.kind in kinds), None)


def export_csv(store: Store, start: date, end: date, status: str | None = None) -> str:
    """One row per ticket created from `start` to `end` (optionally of one status); amounts in
    yuan with two decimals; `payout_key` and `amount` are what `payouts reconcile` reads back."""
    begin, stop = period(start, end)
    with store.unit_of_work() as uow:
        tickets = uow.ticket_facts(begin, stop)
        events = uow.event_facts(begin, stop)
        payouts = uow.payouts_of_tickets(begin, stop)
    trails: dict[str, list[EventFacts]] = {}
    for e in events:
        trails.setdefault(e.ticket_no, []).append(e)
    latest = {p.ticket_no: p for p in payouts}  # oldest first: the last one wins
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for t in tickets:
        if status is not None and t.status != status:
            continue
        trail = trails.get(t.ticket_no, [])
        decision = next((e for e in reversed(trail) if e.kind in ("approve", "reject")), None)
        approve = next((e for e in reversed(trail) if e.kind == "approve"), None)
        paid = _first(trail, "mark_refunded")
        payout = latest.get(t.ticket_no)
        writer.writerow(
            [
                t.ticket_no,
                t.created_at.isoformat(),
                t.order_id,
                t.customer_id,
                t.channel,
                t.reason,
                t.sub_reason or "",
                t.status,
                yuan(t.requested_fen),
                yuan(t.approved_fen),
                "" if decision is None else decision.kind,
                "" if decision is None else decision.at.isoformat(),
                "" if decision is None else decision.actor,
                "" if payout is None else payout.idempotency_key,
                "" if payout is None else yuan(payout.amount_fen),
                "" if payout is None else payout.state.value,
                "" if approve is None else approve.at.isoformat(),
                "" if approve is None else approve.actor,
                "" if paid is None else paid.at.isoformat(),
                "" if paid is None else paid.actor,
            ]
        )
    return out.getvalue()


# --- reconciliation ------------------------------------------------------------------------------

# header -> meaning; the first header of each meaning found in the file is used
KEY_COLUMNS = ("payout_key", "out_refund_no", "out_request_no", "idempotency_key")
FEN_COLUMNS = ("amount_fen", "refund_fee")  # integer fen (WeChat Pay's refund_fee is fen)
YUAN_COLUMNS = ("amount", "refund_amount")  # yuan with at most two decimals (Alipay: yuan)
STATUS_COLUMNS = ("status", "refund_status")
PAID_STATUSES = frozenset({"success", "paid", "refund_success", "成功", "退款成功"})


@dataclass
class Reconciled:
    paid: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line N: KEY: what"
    already_paid: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class StatementError(Exception):
    """The statement file cannot be read at all (no key column, no amount column)."""


@dataclass(frozen=True)
class _Row:
    line: int
    key: str
    amount_fen: int | None
    status: str


def read_statement(path: Path) -> list[_Row]:
    """The statement's rows; StatementError when its columns are not recognised."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        headers = [h.strip() for h in reader.fieldnames or []]
        key = next((h for h in KEY_COLUMNS if h in headers), None)
        fen = next((h for h in FEN_COLUMNS if h in headers), None)
        yuan_col = next((h for h in YUAN_COLUMNS if h in headers), None)
        status = next((h for h in STATUS_COLUMNS if h in headers), None)
        if key is None or (fen is None and yuan_col is None):
            raise StatementError(
                f"{path}: needs a key column ({' | '.join(KEY_COLUMNS)}) and an amount column"
                f" ({' | '.join(FEN_COLUMNS + YUAN_COLUMNS)}); found {', '.join(headers)}"
            )
        found = []
        for n, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            amount: int | None
            try:
                if fen is not None:
                    amount = int(row[fen])
                else:
                    assert yuan_col is not None
                    amount = parse_yuan(row[yuan_col])
            except ValueError:
                amount = None
            state = row[status].casefold() if status is not None else "paid"
            found.append(_Row(n, row[key], amount, state))
        return found


def reconcile(
    store: Store,
    rows: Iterable[_Row],
    actor: str,
    now: datetime,
    catalog: Catalog | None = None,
) -> Reconciled:
    """Mark the matching pending payouts paid, all in one unit of work; every other row is
    reported and changes nothing. A second run finds them paid: reported, exit status 0. With a
    catalog, each customer is told in their language through the outbox (the running bot sends
    it), as when an agent marks a payout refunded."""
    result = Reconciled()
    with store.unit_of_work() as uow:
        for row in rows:
            where = f"line {row.line}: {row.key or '(empty key)'}"
            ticket_no = row.key.split("/", 1)[0]
            ticket = uow.ticket(ticket_no) if row.key else None
            entry = None
            if ticket is not None:
                entry = next(
                    (
                        r
                        for r in uow.refunds_of_order(ticket.order_id)
                        if r.idempotency_key == row.key
                    ),
                    None,
                )
            if ticket is None or entry is None:
                result.problems.append(f"{where}: unknown payout key")
            elif row.amount_fen is None:
                result.problems.append(f"{where}: the amount is not a number")
            elif row.status not in PAID_STATUSES:
                result.problems.append(f"{where}: the statement says {row.status!r}, not paid")
            elif entry.state is RefundState.PAID:
                result.already_paid.append(f"{where}: already paid")
            elif row.amount_fen != entry.amount_fen:
                result.problems.append(
                    f"{where}: amount differs: statement ¥{yuan(row.amount_fen)},"
                    f" ledger ¥{yuan(entry.amount_fen)}"
                )
            elif entry.state is RefundState.FAILED:
                result.problems.append(f"{where}: the ledger has this payout as failed")
            elif ticket.status not in (TicketStatus.APPROVED, TicketStatus.REFUNDING):
                result.problems.append(f"{where}: ticket is {ticket.status.value}")
            else:
                try:
                    mark_refunded(uow, ticket, actor, now)
                except Refusal as exc:
                    result.problems.append(f"{where}: {exc.key}")
                    continue
                result.paid.append(f"{where}: marked paid (¥{yuan(entry.amount_fen)})")
                if catalog is not None:
                    _tell_refunded(
                        uow, catalog, ticket.customer_id, ticket_no, entry.amount_fen, now
                    )
    return result


def _tell_refunded(
    uow: UnitOfWork,
    catalog: Catalog,
    customer_id: int,
    ticket_no: str,
    amount_fen: int,
    now: datetime,
) -> None:
    """The customer's latest conversation hears that the money is on its way back."""
    conversations = uow.conversations_of_customer(customer_id)
    if not conversations:
        return
    conv = conversations[0]
    key = "handoff.refunded"
    text = catalog.text(
        turn_locale(conv, catalog), key, {"ticket_no": ticket_no, "amount_fen": amount_fen}
    )
    uow.queue(
        OutboxMessage(
            conv.key.channel, conv.key.user_id, Reply(key, text).to_payload(), created_at=now
        )
    )
