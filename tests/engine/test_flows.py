"""Flows as data: a broken flow file fails at load with the file and the name; the shipped flows,
the message catalogs, every key the rules produce and the flow diagrams agree with each other."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest

import bot.dialogue
from bot.app import load_dialogue
from bot.calendar import WorkingCalendar
from bot.cli import diagram_markdown
from bot.domain import (
    MOVES,
    SUB_REASONS,
    Category,
    EvidenceKind,
    History,
    MerchantStatus,
    Outcome,
    PaymentChannel,
    Reason,
    RefundEntry,
    TicketStatus,
    TicketSummary,
)
from bot.engine import FLOWS_DIR, FlowError, load_flows, mermaid
from bot.i18n import default_catalog
from bot.rules import assess
from tests.factories import at, make_order, repo_config

ROOT = Path(__file__).resolve().parents[2]
CATALOG = default_catalog()


def load(directory: Path) -> None:
    load_flows(bot.dialogue.STEPS, CATALOG.keys(), directory)


def broken_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    directory = tmp_path / "flows"
    shutil.copytree(FLOWS_DIR, directory)
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {file}: the test needs updating"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return directory


# (file, text, replacement, a problem naming the file and the name)
BREAKAGES = {
    "unknown-dest-state": (
        "apply.yaml",
        "dest: amount, conditions: [evidence_enough]",
        "dest: amount_step, conditions: [evidence_enough]",
        "apply.yaml: transitions[12] (done): unknown state 'amount_step'",
    ),
    "unknown-source-state": (
        "status.yaml",
        "source: [detail, escalation]",
        "source: [detail, escalated]",
        "status.yaml: transitions[1] (back): unknown state 'escalated' in source",
    ),
    "unknown-flow": (
        "appeal.yaml",
        'dest: "@status.detail", conditions',
        'dest: "@stats.detail", conditions',
        "appeal.yaml: transitions[4] (done): unknown flow 'stats'",
    ),
    "unknown-condition": (
        "apply.yaml",
        "conditions: [evidence_enough]",
        "conditions: [evidence_enuf]",
        "apply.yaml: transitions[12] (done): unknown condition 'evidence_enuf'",
    ),
    "unknown-unless": (
        "start.yaml",
        "unless: [link_attempts_exhausted]",
        "unless: [attempts_exhausted]",
        "start.yaml: transitions[1] (link_by_order): unknown condition 'attempts_exhausted'",
    ),
    "unknown-action": (
        "apply.yaml",
        "actions: [remember_amount]",
        "actions: [remember_amout]",
        "apply.yaml: transitions[13] (enter_amount): unknown action 'remember_amout'",
    ),
    "unknown-global-action": (
        "global.yaml",
        "actions: [request_handoff, after_hours]",
        "actions: [request_handof, after_hours]",
        "global.yaml: transitions[1] (agent): unknown action 'request_handof'",
    ),
    "unknown-view": (
        "apply.yaml",
        "view: amount\n",
        "view: amount_view\n",
        "apply.yaml: state amount: unknown view 'amount_view'",
    ),
    "unknown-prompt-key": (
        "apply.yaml",
        "prompt: apply.amount",
        "prompt: apply.amount_typo",
        "apply.yaml: state amount: unknown message key 'apply.amount_typo'",
    ),
    "unknown-button-key": (
        "handoff.yaml",
        "label: button.back_to_bot",
        "label: button.back_to_the_bot",
        "handoff.yaml: state with_agent: button: unknown message key 'button.back_to_the_bot'",
    ),
    "unknown-button-condition": (
        "status.yaml",
        "when: ticket_needs_info",
        "when: ticket_needs_more",
        "status.yaml: state detail: button 'button.supplement': unknown condition 'ticket_needs_more'",
    ),
    "unreachable-state": (
        "status.yaml",
        "  escalation:\n",
        "  orphan:\n    prompt: status.none\n  escalation:\n",
        "status.yaml: state orphan is unreachable",
    ),
    "on-text-without-transition": (
        "start.yaml",
        "  - {trigger: enter_order_no, source: ask_order_no, dest: ask_last4, conditions: [looks_like_order_no], actions: [remember_order_no]}\n",
        "",
        "start.yaml: state ask_order_no: on_text fires 'enter_order_no', which has no transition from this state",
    ),
    "on-file-without-transition": (
        "supplement.yaml",
        "on_file: add_evidence",
        "on_file: add_file",
        "supplement.yaml: state upload: on_file fires 'add_file', which has no transition from this state",
    ),
    "button-without-transition": (
        "status.yaml",
        "  - {trigger: escalate, source: detail, dest: escalation, conditions: [ticket_finally_rejected]}\n",
        "  - {trigger: escalate, source: escalation, dest: escalation}\n",
        "status.yaml: state detail: button 'button.escalate' fires 'escalate', which has no transition from this state",
    ),
    "initial-not-declared": (
        "menu.yaml",
        "initial: main",
        "initial: mian",
        "menu.yaml: initial state 'mian' is not declared",
    ),
    "unknown-field": (
        "menu.yaml",
        "    global_buttons: false",
        "    global_buttons: false\n    colour: blue",
        "menu.yaml: states.main.colour: Extra inputs are not permitted",
    ),
    "not-yaml": (
        "handoff.yaml",
        "quiet: true",
        "quiet: [true",
        "handoff.yaml: not valid YAML",
    ),
    "flow-declared-twice": (
        "supplement.yaml",
        "flow: supplement",
        "flow: appeal",
        "flow 'appeal' already declared",
    ),
    "global-with-a-source": (
        "global.yaml",
        '{trigger: help, source: "*"',
        "{trigger: help, source: welcome",
        "global.yaml: transitions[",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_broken_flow_names_the_file_and_the_name(tmp_path: Path, name: str) -> None:
    file, old, new, problem = BREAKAGES[name]
    directory = broken_copy(tmp_path, file, old, new)
    with pytest.raises(FlowError) as raised:
        load(directory)
    assert any(problem in p for p in raised.value.problems), raised.value.problems
    assert problem in str(raised.value)


def test_a_missing_global_file_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "flows"
    shutil.copytree(FLOWS_DIR, directory)
    (directory / "global.yaml").unlink()
    with pytest.raises(FlowError, match=r"global\.yaml: missing"):
        load(directory)


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    directory = broken_copy(
        tmp_path, "apply.yaml", "actions: [remember_amount]", "actions: [nope_a]"
    )
    path = directory / "apply.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "conditions: [evidence_enough]", "conditions: [nope_c]"
        ),
        encoding="utf-8",
    )
    with pytest.raises(FlowError) as raised:
        load(directory)
    assert len(raised.value.problems) == 2
    assert all(p.startswith("apply.yaml: ") for p in raised.value.problems)


def test_the_shipped_flows_load_and_every_key_they_use_exists() -> None:
    flows, catalog = load_dialogue()
    assert set(flows.flows) == {
        "start",
        "menu",
        "apply",
        "status",
        "supplement",
        "appeal",
        "handoff",
        "rating",
    }
    assert catalog.problems(flows.message_keys) == []
    assert default_catalog().problems(flows.message_keys) == []
    assert set(catalog.locales) == {"zh-CN", "en"}


def test_a_missing_translation_is_a_problem() -> None:
    from bot.i18n import Catalog

    catalog = Catalog({"zh-CN": {"a": "甲 {x}", "b": "乙"}, "en": {"a": "A {y}"}})
    problems = catalog.problems(["a", "c"])
    assert "locales/en.yaml: missing key b" in problems
    assert any("en.yaml: a uses ['y']" in p for p in problems)
    assert "message key c is used but defined in no locale" in problems


# -- every key the rules and the dialogue code can produce -----------------------------------


def rule_keys() -> set[str]:
    """Run the rules over many orders, reasons and histories; collect every key they name."""
    shipped = repo_config().policy
    # the shipped exclusions are by nature; the statutory basis is reached with the list form
    statutory = shipped.model_copy(
        update={
            "seven_day": shipped.seven_day.model_copy(
                update={"excluded_categories": {Category.GAME_POINTS: "statutory"}}
            )
        }
    )
    cal = WorkingCalendar()
    now = at("2026-11-24 10:00")
    keys: set[str] = set()
    activated = at("2026-11-21 10:00")
    variants: list[dict[str, Any]] = [
        {},
        *(
            {"category": c, "activation_exclusion_confirmed": confirmed}
            for c in Category
            for confirmed in (False, True)
        ),
        {"used_days": 30},
        {"used_days": 365},  # all of it used: nothing left to refund pro rata
        *(
            {"activated_at": activated, "activation_exclusion_confirmed": confirmed}
            for confirmed in (False, True)
        ),
        {"seven_day_supported": False},
        *({"merchant_status": m} for m in MerchantStatus),
        *(
            {"coupon_fen": 1000, "coupon_refundable": refundable, "used_days": used}
            for refundable in (False, True)
            for used in (0, 30)
        ),
        {"cash_paid_fen": 50000, "list_price_fen": 50000},  # too much for a fast refund
    ]
    orders = [
        make_order(order_id=f"O{i}", **{"list_price_fen": 11000, "cash_paid_fen": 10000, **v})
        for i, v in enumerate(variants)
    ]
    old = make_order(order_id="OLD", paid_at=at("2026-10-01 10:00"))
    twin = make_order(order_id="TWIN", paid_at=at("2026-11-20 11:00"))
    orders += [old, twin]
    open_ticket = TicketSummary(
        ticket_no="T1", order_id="O0", status=TicketStatus.IN_REVIEW, created_at=now
    )
    rejected = TicketSummary(
        ticket_no="T2",
        order_id="O1",
        status=TicketStatus.REJECTED,
        created_at=now - timedelta(days=5),
        rejected_at=now - timedelta(days=2),
    )
    histories = [
        History(),
        History(orders=(twin,)),
        History(tickets=(open_ticket, rejected)),
        History(refunded_fen=4000),
        History(refunded_fen=10000),
    ]
    for order, history, reason, policy in product(
        orders, histories, list(Reason), (shipped, statutory)
    ):
        subs = SUB_REASONS[reason] or (None,)
        if reason is Reason.SEVEN_DAY:
            subs = (None, *SUB_REASONS[reason])
        for sub in subs:
            quote = assess(order, reason, sub, now, policy, cal, history)
            keys.update(quote.explanation)
            keys.update(line.key for line in quote.breakdown)
            keys.add(quote.evidence.hint_key)
            keys.add(f"precheck.outcome.{quote.outcome.value}")
            keys.update(f"legal:{ref}" for ref in quote.legal_refs)
    return keys


def test_every_key_the_rules_produce_exists_in_both_locales() -> None:
    keys = rule_keys()
    message_keys = {k for k in keys if not k.startswith("legal:")}
    # the sweep really reached every branch that names a key
    assert {
        "precheck.refused.open_ticket",
        "precheck.refused.nothing_left",
        "precheck.refused.zero_amount",
        "precheck.seven_day.excluded_category",
        "precheck.seven_day.excluded_confirmed",
        "precheck.seven_day.category_not_confirmed",
        "precheck.seven_day.eligible_remaining",
        "precheck.service.full_remaining",
        "precheck.mistaken.unused_remaining",
        "precheck.earlier_refunds",
        "precheck.seven_day.not_supported",
        "precheck.seven_day.window_passed",
        "precheck.activation.confirmed",
        "precheck.activation.not_confirmed",
        "precheck.fast_refund",
        "precheck.duplicate.verified",
        "precheck.duplicate.not_verified",
        "precheck.mistaken.partly_used",
        "precheck.service.merchant_status_on_record",
        "breakdown.used_days",
        "breakdown.already_refunded",
        "breakdown.coupon_returned",
        "breakdown.coupon_kept_partial",
        "breakdown.coupon_not_refundable",
    } <= message_keys
    assert {f"precheck.outcome.{o.value}" for o in Outcome} <= message_keys
    missing = sorted(k for k in message_keys if not CATALOG.has(k))
    assert missing == []
    legal = {k.removeprefix("legal:") for k in keys if k.startswith("legal:")}
    config = repo_config()
    assert legal == {
        "cpl_25",
        "measures_art7",
        "impl_reg_19",
        "ecl_49",
        "cpl_44",
        "cpl_53",
        "spc_prepaid_2025",
    }
    for ref in legal | {"complaint_12315"}:
        assert set(config.legal[ref].cite) >= set(CATALOG.locales), ref
        assert set(config.legal[ref].summary) >= set(CATALOG.locales), ref


def test_the_month_unit_has_its_breakdown_text() -> None:
    assert CATALOG.has("breakdown.used_months")


def test_every_key_built_from_a_domain_value_exists() -> None:
    built = (
        [f"reason.{r.value}" for r in Reason]
        + [f"sub_reason.{s.value}" for subs in SUB_REASONS.values() for s in subs]
        + [f"category.{c.value}" for c in Category]
        + [f"evidence.kind.{k.value}" for k in EvidenceKind]
        + [f"status.name.{s.value}" for s in TicketStatus]
        # a rejection's next step says whether an appeal is left (status.next.rejected_*)
        + [f"status.next.{s.value}" for s in TicketStatus if s is not TicketStatus.REJECTED]
        + [f"timeline.{trigger}" for trigger in MOVES]
        + ["timeline.submitted"]
    )
    assert [k for k in built if not CATALOG.has(k)] == []
    assert {c.value for c in PaymentChannel} <= set(repo_config().policy.payout_windows)
    assert RefundEntry  # the ledger model the timeline's payout steps describe


# a string literal that looks like a message key: "evidence.error.size"
KEY_LITERAL = re.compile(r'"([a-z_]+(?:\.[a-z_0-9]+)+)"')


def test_every_key_named_in_the_dialogue_code_exists_in_both_locales() -> None:
    every_key = CATALOG.keys()
    namespaces = {k.split(".")[0] for k in every_key}
    sources = [
        *ROOT.joinpath("bot", "engine").rglob("*.py"),
        *ROOT.joinpath("bot", "dialogue").rglob("*.py"),
        ROOT / "bot" / "tickets.py",
    ]
    named = {
        key
        for path in sources
        for key in KEY_LITERAL.findall(path.read_text(encoding="utf-8"))
        if key.split(".")[0] in namespaces
    }
    assert {"common.misunderstood", "button.stale", "precheck.refused.open_ticket"} <= named
    assert sorted(k for k in named if not CATALOG.has(k)) == []


# -- diagrams -------------------------------------------------------------------------------


def test_the_flow_diagrams_in_docs_are_up_to_date() -> None:
    flows, _ = load_dialogue()
    docs = ROOT / "docs" / "flows"
    for name, flow in sorted(flows.flows.items()):
        path = docs / f"flow-{name}.md"
        assert path.exists(), f"{path} is missing: run `refund-bot diagram`"
        expected = diagram_markdown(name, flow.decl.description, mermaid(flow))
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path} is out of date with flows/{name}.yaml: run `refund-bot diagram`"
        )
    assert {p.name for p in docs.glob("flow-*.md")} == {f"flow-{n}.md" for n in flows.flows}


def test_the_diagram_check_notices_a_changed_flow(tmp_path: Path) -> None:
    directory = broken_copy(
        tmp_path,
        "apply.yaml",
        "  - {trigger: change_amount, source: confirm, dest: amount}\n",
        "  - {trigger: change_amount, source: confirm, dest: amount}\n"
        "  - {trigger: back, source: confirm, dest: amount}\n",
    )
    changed = load_flows(bot.dialogue.STEPS, CATALOG.keys(), directory).flows["apply"]
    shipped = (ROOT / "docs" / "flows" / "flow-apply.md").read_text(encoding="utf-8")
    assert diagram_markdown("apply", changed.decl.description, mermaid(changed)) != shipped


def test_the_diagram_command_writes_what_the_check_expects(tmp_path: Path) -> None:
    from bot.cli import main

    out = tmp_path / "docs"
    assert main(["--config", str(ROOT / "config.yaml"), "diagram", "--out", str(out)]) == 0
    for path in (ROOT / "docs" / "flows").glob("flow-*.md"):
        assert (out / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
