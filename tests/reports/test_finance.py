"""`refund-bot ticket`, `tickets export` and `payouts reconcile` on the hand-built histories."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.domain import RefundState, TicketStatus
from bot.reports import EXPORT_COLUMNS
from bot.store import Conversation, ConversationKey, Store

from .conftest import CONFIG


@pytest.fixture
def cli(
    histories: Store, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("REFUND_BOT_DATABASE_URL", database_url)
    return tmp_path


def run(*args: str) -> int:
    return main(["--config", str(CONFIG), *args])


def test_ticket_history_as_json_and_text(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("ticket", "T20260930-0001", "--format", "json") == 0
    history = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in history["events"]] == [
        "submitted",
        "reject",
        "appeal",
        "approve",
        "coupon_returned",
    ]
    assert history["refunds"][0]["idempotency_key"] == "T20260930-0001/payout/0"
    assert history["order"]["order_id"] == "O1"
    assert history["policy_fingerprint"] == "2026.12+0123456789ab"
    assert run("ticket", "T20260930-0001") == 0
    text = capsys.readouterr().out
    assert "agent:7  reject →rejected" in text
    assert "T20260930-0001/payout/0  ¥100.00  pending" in text
    assert "policy fingerprint 2026.12+0123456789ab" in text
    assert run("ticket", "T19990101-0001") == 1
    assert "no ticket T19990101-0001" in capsys.readouterr().err


def export(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, str]]:
    assert run("tickets", "export", "--from", "2026-09-28", "--to", "2026-10-18", *extra) == 0
    out = capsys.readouterr().out
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    return list(reader)


def test_export_one_row_per_ticket_for_finance(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(capsys)
    assert [r["ticket_no"] for r in rows] == [
        "T20260930-0001",
        "T20261009-0001",
        "T20261012-0001",
    ]
    first = rows[0]
    assert (first["decision"], first["decided_by"], first["approved_by"]) == (
        "approve",
        "agent:7",
        "agent:7",
    )
    assert (first["payout_key"], first["amount"], first["payout_state"]) == (
        "T20260930-0001/payout/0",
        "100.00",
        "pending",
    )
    second = rows[1]
    assert (second["channel"], second["paid_by"], second["approved_by"]) == (
        "wechat",
        "agent:8",
        "system",
    )
    assert second["paid_at"].startswith("2026-10-12T02:00")
    assert [r["ticket_no"] for r in export(capsys, "--status", "refunded")] == ["T20261009-0001"]


def statement(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    return path


def ledger(store: Store) -> dict[str, str]:
    with store.unit_of_work() as uow:
        return {
            r.idempotency_key: r.state.value
            for order in ("O1", "O2", "O3")
            for r in uow.refunds_of_order(order)
        } | {"T1": uow.ticket("T20260930-0001").status.value}  # type: ignore[union-attr]


def test_reconcile_marks_matching_payouts_and_reports_the_rest(
    cli: Path, histories: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with histories.unit_of_work() as uow:
        customer = uow.ticket("T20260930-0001").customer_id  # type: ignore[union-attr]
        chat = ConversationKey("telegram", "5550001")
        uow.save_conversation(Conversation(chat, "menu", "main", customer_id=customer))
    wechat = statement(
        cli / "wechat.csv",
        "out_refund_no,refund_fee,refund_status,success_time",
        "T20260930-0001/payout/0,10000,SUCCESS,2026-10-19T10:00:00+08:00",
        "T20261009-0001/payout/0,5000,SUCCESS,2026-10-12T10:00:00+08:00",
        "T20261012-0001/payout/0,7999,SUCCESS,2026-10-19T10:00:00+08:00",
        "T20990101-0001/payout/0,100,SUCCESS,2026-10-19T10:00:00+08:00",
    )
    assert run("payouts", "reconcile", str(wechat)) == 1
    captured = capsys.readouterr()
    assert "line 2: T20260930-0001/payout/0: marked paid (¥100.00)" in captured.out
    assert "line 3: T20261009-0001/payout/0: already paid" in captured.out
    assert "line 4: T20261012-0001/payout/0: amount differs" in captured.err
    assert "line 5: T20990101-0001/payout/0: unknown payout key" in captured.err
    assert "1 marked paid, 1 already paid, 2 not matched" in captured.out
    after = ledger(histories)
    assert after["T20260930-0001/payout/0"] == RefundState.PAID.value
    with histories.unit_of_work() as uow:  # the customer is told; the running bot sends it
        (told,) = uow.pending_outbox(recipient="5550001")
    assert told.payload["key"] == "handoff.refunded"
    assert "T20260930-0001" in told.payload["text"] and "100.00" in told.payload["text"]
    assert after["T1"] == TicketStatus.REFUNDED.value
    assert after["T20261012-0001/payout/0"] == RefundState.PENDING.value  # amount differed

    # the same statement again: nothing changes, the paid rows are reported as already paid
    alipay = statement(
        cli / "alipay.csv",
        "out_request_no,refund_amount,refund_status",
        "T20260930-0001/payout/0,100.00,REFUND_SUCCESS",
        "T20261012-0001/payout/0,80.00,FAIL",
    )
    assert run("payouts", "reconcile", str(alipay)) == 1
    captured = capsys.readouterr()
    assert "line 2: T20260930-0001/payout/0: already paid" in captured.out
    assert "line 3: T20261012-0001/payout/0: the statement says 'fail'" in captured.err
    assert ledger(histories) == after


def test_reconcile_round_trips_the_export_and_twice_exits_0(
    cli: Path, histories: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(capsys, "--status", "approved")
    exported = cli / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(EXPORT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    assert run("payouts", "reconcile", str(exported)) == 0
    assert "2 marked paid, 0 already paid, 0 not matched" in capsys.readouterr().out
    before = ledger(histories)
    assert run("payouts", "reconcile", str(exported)) == 0
    assert "0 marked paid, 2 already paid, 0 not matched" in capsys.readouterr().out
    assert ledger(histories) == before


def test_reconcile_refuses_a_file_without_its_columns(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = statement(cli / "bad.csv", "order,money", "O1,1")
    assert run("payouts", "reconcile", str(bad)) == 2
    assert "needs a key column" in capsys.readouterr().err
