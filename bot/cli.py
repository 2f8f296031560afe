"""`refund-bot` command line: run, console, check, orders import, dialogues, diagram, db."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bot.calendar import WorkingCalendar
from bot.clock import SHANGHAI, SystemClock
from bot.config import Config, ConfigError, Secrets, load_config, with_database_url
from bot.domain import TicketStatus
from bot.orders_import import ImportFileError, format_errors, import_orders, parse_orders
from bot.rules import policy_fingerprint
from bot.store import BadStoreUrl, Store, StoreError, StoreUrl, open_store, parse_store_url

log = logging.getLogger("bot")

Command = Callable[[argparse.Namespace, Config], int]


def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    from bot.app import load_dialogue
    from bot.engine import FlowError

    problems: list[str] = []
    try:
        flows, catalog = load_dialogue()
        problems.extend(catalog.problems(flows.message_keys))
    except FlowError as exc:
        problems.extend(f"flows/{p}" for p in exc.problems)
    from bot.store._copy import probe

    target = config.store.target
    reached = probe(target)
    if not reached.reachable:
        problems.append(f"store {target.masked}: cannot be reached: {reached.detail}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.config}: ok; flows and message catalogs: ok")
    print(f"store: {target.masked} ({target.kind}): reachable, {reached.detail}")
    print(f"policy fingerprint (stamped on every decision): {policy_fingerprint(config.policy)}")
    for warning in desk_warnings(config):
        print(f"warning: {warning}")
    cal = WorkingCalendar(config.calendar.fallback_holidays, config.calendar.fallback_workdays)
    this_year = SystemClock().now().astimezone(SHANGHAI).year
    print("working days by year:")
    for line in cal.sources((this_year, this_year + 1)):
        print(f"  {line}")
    return 0


CONSOLE_STORE = Path("var") / "console-demo.sqlite3"


def console_config(config: Config, config_path: Path) -> Config:
    """The console's own demo store, next to the config file: never the store `run` uses (nor
    REFUND_BOT_DATABASE_URL's), so demo orders never land among real ones."""
    path = (config_path.resolve().parent / CONSOLE_STORE).resolve()
    if config.store.url is None and config.store.path.resolve() == path:
        raise ValueError(f"store.path {path} is the console's demo store; choose another")
    return config.model_copy(
        update={"store": config.store.model_copy(update={"url": None, "path": path})}
    )


def desk_warnings(config: Config) -> list[str]:
    """What `check` warns about the agent desk (issue 15): no desk means no person to hand to."""
    desk = config.agent_desk
    if desk.chat_id is not None:
        return (
            [] if desk.agent_ids else ["agent_desk.agent_ids is empty: nobody may act at the desk"]
        )
    contact = desk.contact
    offered = [
        n
        for n, v in (
            ("hotline", contact.hotline),
            ("hours", contact.hours),
            ("email", contact.email),
        )
        if v
    ]
    what = (
        ", ".join(f"agent_desk.contact.{n}" for n in offered)
        or "nothing (agent_desk.contact is empty)"
    )
    return [
        "no agent desk is configured (agent_desk.chat_id): a customer who asks for a person is "
        f"offered {what} instead"
    ]


def _cmd_console(args: argparse.Namespace, config: Config) -> int:
    from bot.app import build_app
    from bot.console import rehearsal_config, run_console

    try:
        demo = console_config(config, args.config)
    except ValueError as exc:
        print(f"console: {exc}", file=sys.stderr)
        return 2
    print(f"(demo store: {demo.store.path}; the bot's store is not touched)")
    app = build_app(rehearsal_config(demo) if args.agent else demo)
    try:
        return run_console(app, agent=args.agent)
    finally:
        app.close()


def _cmd_run(args: argparse.Namespace, config: Config) -> int:
    from bot.logs import configure
    from bot.telegram import run

    configure(config.log, args.verbose)
    return run(config, Secrets.from_env())


def _cmd_diagram(args: argparse.Namespace, config: Config) -> int:
    from bot.app import load_dialogue
    from bot.engine import mermaid

    flows, _ = load_dialogue()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, flow in sorted(flows.flows.items()):
        path = out / f"flow-{name}.md"
        path.write_text(
            diagram_markdown(name, flow.decl.description, mermaid(flow)), encoding="utf-8"
        )
        print(path)
    return 0


def diagram_markdown(name: str, description: str, source: str) -> str:
    """The Markdown page of one flow's diagram (kept in docs/, checked for staleness by a test)."""
    return (
        f"# Flow `{name}`\n\n{description}\n\n"
        "Generated by `refund-bot diagram` from `flows/" + name + ".yaml`; do not edit by hand. "
        "Transitions of `flows/global.yaml` (cancel, talk to a person, language, help) apply in "
        "every state and are left out.\n\n```mermaid\n" + source.rstrip() + "\n```\n"
    )


def _cmd_dialogues(args: argparse.Namespace, config: Config) -> int:
    from bot.dialogue_tests import run_dialogues

    # scripts merge their overrides over the config *file* (not the parsed Config, whose fen
    # amounts would be read back as yuan), so the path is what the runner needs
    return run_dialogues(
        args.paths, args.config, check_coverage=args.check_coverage, transcript=args.transcript
    )


def _cmd_orders_import(args: argparse.Namespace, config: Config) -> int:
    """Import a CSV/JSON orders file: every row checked first, then all of it or nothing."""
    path: Path = args.file
    try:
        result = parse_orders(path)
    except ImportFileError as exc:
        print(f"orders import: {exc}", file=sys.stderr)
        return 1
    if not result.ok:
        for line in format_errors(result.errors):
            print(line, file=sys.stderr)
        count = len(result.errors)
        noun = "problem" if count == 1 else "problems"
        print(f"nothing imported: {count} {noun} in {path}", file=sys.stderr)
        return 1
    target = config.store.target
    try:
        store = open_store(target)
    except (OSError, sqlite3.Error, StoreError) as exc:
        print(f"orders import: cannot open the store {target.shown}: {exc}", file=sys.stderr)
        return 1
    try:
        summary = import_orders(store, result.orders)
    except (sqlite3.Error, StoreError) as exc:
        print(f"orders import: nothing imported, the store failed: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(summary)
    return 0


def _store_url(command: str, name: str, text: str) -> StoreUrl | None:
    try:
        return parse_store_url(text)
    except BadStoreUrl as exc:
        print(f"{command}: {name}: {exc}", file=sys.stderr)
        return None


def _cmd_db_migrate(args: argparse.Namespace, config: Config) -> int:
    """Bring the store's schema up to date (a store also does this whenever it opens)."""
    from bot.store._copy import probe

    target = config.store.target if args.url is None else _store_url("db migrate", "URL", args.url)
    if target is None:
        return 2
    before = probe(target).detail
    try:
        open_store(target).close()
    except (OSError, sqlite3.Error, StoreError) as exc:
        print(f"db migrate: {target.masked}: {exc}", file=sys.stderr)
        return 1
    print(f"{target.masked}: was {before}; now {probe(target).detail}")
    return 0


def _cmd_db_copy(args: argparse.Namespace, config: Config) -> int:
    """Copy a whole store into an empty one (SQLite to PostgreSQL), verified table by table."""
    from bot.store._copy import copy_database

    source = _store_url("db copy", "SOURCE_URL", args.source)
    target = _store_url("db copy", "TARGET_URL", args.target)
    if source is None or target is None:
        return 2
    try:
        copied = copy_database(source, target)
    except (OSError, sqlite3.Error, StoreError) as exc:
        print(f"db copy: nothing copied: {exc}", file=sys.stderr)
        return 1
    for table, count in sorted(copied.rows.items()):
        print(f"{table}: {count} rows")
    total = sum(copied.rows.values())
    print(
        f"copied {total} rows from {source.masked} to {target.masked}; every table's row count"
        " and integer sums checked on both sides"
    )
    return 0


def _open(command: str, config: Config) -> Store | None:
    target = config.store.target
    try:
        return open_store(target)
    except (OSError, sqlite3.Error, StoreError) as exc:
        print(f"{command}: cannot open the store {target.shown}: {exc}", file=sys.stderr)
        return None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"written to {out}")


def _calendar(config: Config) -> WorkingCalendar:
    return WorkingCalendar(config.calendar.fallback_holidays, config.calendar.fallback_workdays)


def _cmd_report(args: argparse.Namespace, config: Config) -> int:
    """Figures of the tickets created in a period, as text, CSV, JSON or one HTML page."""
    from bot.reports import as_csv, as_html, as_json, as_text, build

    now = SystemClock().now()
    end: date = args.to or now.astimezone(SHANGHAI).date()
    start: date = args.from_ or end - timedelta(days=29)
    if start > end:
        print("report: --from must not be after --to", file=sys.stderr)
        return 2
    store = _open("report", config)
    if store is None:
        return 1
    try:
        figures = build(store, _calendar(config), start, end, now)
    finally:
        store.close()
    render = {"text": as_text, "csv": as_csv, "json": as_json, "html": as_html}[args.format]
    _write(render(figures), args.out)
    return 0


def _cmd_ticket(args: argparse.Namespace, config: Config) -> int:
    """One ticket's whole history as text or JSON."""
    from bot.reports import history_text, ticket_history

    store = _open("ticket", config)
    if store is None:
        return 1
    try:
        history = ticket_history(store, args.ticket_no)
    finally:
        store.close()
    if history is None:
        print(f"ticket: no ticket {args.ticket_no}", file=sys.stderr)
        return 1
    if args.format == "json":
        sys.stdout.write(json.dumps(history, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(history_text(history))
    return 0


def _cmd_tickets_export(args: argparse.Namespace, config: Config) -> int:
    """The finance CSV: one row per ticket created in the period."""
    from bot.reports import export_csv

    if args.from_ > args.to:
        print("tickets export: --from must not be after --to", file=sys.stderr)
        return 2
    store = _open("tickets export", config)
    if store is None:
        return 1
    try:
        text = export_csv(store, args.from_, args.to, args.status)
    finally:
        store.close()
    _write(text, args.out)
    return 0


def _cmd_payouts_reconcile(args: argparse.Namespace, config: Config) -> int:
    """Mark the payouts a refund statement shows paid; report every row that does not match."""
    from bot.i18n import default_catalog
    from bot.reports import StatementError, read_statement, reconcile

    try:
        rows = read_statement(args.file)
    except (OSError, StatementError, csv.Error) as exc:
        print(f"payouts reconcile: {exc}", file=sys.stderr)
        return 2
    store = _open("payouts reconcile", config)
    if store is None:
        return 1
    try:
        actor = f"reconcile:{args.file.name}"
        result = reconcile(store, rows, actor, SystemClock().now(), default_catalog())
    finally:
        store.close()
    for line in result.paid + result.already_paid:
        print(line)
    for line in result.problems:
        print(line, file=sys.stderr)
    print(
        f"{len(result.paid)} marked paid, {len(result.already_paid)} already paid,"
        f" {len(result.problems)} not matched (changed nothing)"
    )
    return 0 if result.ok else 1


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _add_reporting(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="figures of the tickets created in a period (text, csv, json, html)",
        description="Volume, money, decisions, appeals, service levels in Chinese working days, "
        "the conversation funnel, handoffs and agents, for tickets created from --from to --to "
        "(Shanghai days, both included; default the last 30 days).",
    )
    report.add_argument("--from", dest="from_", type=_day, metavar="DATE")
    report.add_argument("--to", type=_day, metavar="DATE")
    report.add_argument("--format", choices=("text", "csv", "json", "html"), default="text")
    report.add_argument("--out", type=Path, metavar="PATH", help="write here, not to stdout")
    report.set_defaults(handler=_cmd_report)

    ticket = sub.add_parser("ticket", help="one ticket's whole history (text or JSON)")
    ticket.add_argument("ticket_no", metavar="TICKET")
    ticket.add_argument("--format", choices=("text", "json"), default="text")
    ticket.set_defaults(handler=_cmd_ticket)

    tickets = sub.add_parser("tickets", help="tickets for finance")
    tickets_sub = tickets.add_subparsers(dest="tickets_command", required=True)
    export = tickets_sub.add_parser(
        "export", help="CSV for finance: one row per ticket created from --from to --to"
    )
    export.add_argument("--from", dest="from_", type=_day, required=True, metavar="DATE")
    export.add_argument("--to", type=_day, required=True, metavar="DATE")
    export.add_argument("--status", choices=[s.value for s in TicketStatus])
    export.add_argument("--out", type=Path, metavar="PATH")
    export.set_defaults(handler=_cmd_tickets_export)

    payouts = sub.add_parser("payouts", help="the refunds ledger against the payment channel")
    payouts_sub = payouts.add_subparsers(dest="payouts_command", required=True)
    rec = payouts_sub.add_parser(
        "reconcile",
        help="mark payouts paid from the channel's refund statement (CSV)",
        description="Columns: a key (payout_key | out_refund_no | out_request_no | "
        "idempotency_key), an amount (amount_fen | refund_fee in fen, or amount | refund_amount "
        "in yuan) and optionally a status (status | refund_status: SUCCESS/paid/成功 mean paid). "
        "All matching rows are marked paid in one transaction; every other row is reported and "
        "changes nothing. Exit 1 when a row did not match.",
    )
    rec.add_argument("file", type=Path, metavar="FILE")
    rec.set_defaults(handler=_cmd_payouts_reconcile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refund-bot", description="小年卡盟 refund assistant")
    parser.add_argument(
        "--config", type=Path, default=Path("config.yaml"), help="path to config.yaml"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the Telegram bot (long polling, or webhook per config.yaml)",
        description="Run the bot on Telegram. The token comes from REFUND_BOT_TOKEN; webhook mode "
        "(telegram.mode: webhook) also needs REFUND_BOT_WEBHOOK_SECRET. telegram.base_url points "
        "at a self-hosted Bot API server.",
    )
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser("check", help="validate config.yaml, the flows and message catalogs")
    check.set_defaults(handler=_cmd_check)

    console = sub.add_parser(
        "console",
        help="talk to the assistant in the terminal (demo orders in var/console-demo.sqlite3)",
    )
    console.add_argument(
        "--agent",
        action="store_true",
        help="the agent side too: /desk commands act at the desk on the console customer's case",
    )
    console.set_defaults(handler=_cmd_console)

    dialogues = sub.add_parser(
        "dialogues",
        help="run scripted dialogue tests (YAML) and report flow coverage",
        description="Run the scripted dialogues in each PATH (a .yaml file, or a folder searched "
        "recursively) through the Telegram adapter with a fake Telegram, a temporary store and a "
        "fixed clock. Prints each failure with what the bot did, then the states and transitions "
        "of every flow the scripts covered. Exits 1 if a script fails. Format: "
        "docs/dialogue-tests.md.",
    )
    dialogues.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="script or folder")
    dialogues.add_argument(
        "--check-coverage",
        action="store_true",
        help="also exit 1 unless every state is visited and 90%% of transitions fired (as CI)",
    )
    dialogues.add_argument(
        "--transcript",
        action="store_true",
        help="print every step of every script with what the bot answered",
    )
    dialogues.set_defaults(handler=_cmd_dialogues)

    diagram = sub.add_parser("diagram", help="write a Mermaid state diagram per flow")
    diagram.add_argument("--out", type=Path, default=Path("docs/flows"), help="output folder")
    diagram.set_defaults(handler=_cmd_diagram)

    orders = sub.add_parser("orders", help="manage the orders the assistant knows")
    # No metavar: the usage line then lists the actions, "{import}".
    orders_sub = orders.add_subparsers(dest="orders_command", required=True)
    orders_import = orders_sub.add_parser(
        "import",
        help="import orders from a .csv or .json file (all rows or none)",
        description="Import orders from the shop's export. Every row is checked first; if any "
        "row is bad, each problem is listed with its line (CSV) or index (JSON) and nothing "
        "is imported. Re-importing an order updates it.",
    )
    orders_import.add_argument("file", type=Path, metavar="FILE", help="orders .csv or .json")
    orders_import.set_defaults(handler=_cmd_orders_import)

    db = sub.add_parser("db", help="the store's database: migrate it, copy it to another")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser(
        "migrate",
        help="bring the store's schema up to date",
        description="Apply the pending schema migrations to the store in config.yaml (or "
        "REFUND_BOT_DATABASE_URL, or URL). A store also migrates itself when it opens; this "
        "does it ahead of a deployment.",
    )
    migrate.add_argument("url", nargs="?", metavar="URL", help="another store than the config's")
    migrate.set_defaults(handler=_cmd_db_migrate)
    copy = db_sub.add_parser(
        "copy",
        help="copy every table of one store into another, empty one (SQLite to PostgreSQL)",
        description="Copy a store, e.g. sqlite:///var/refund-bot.sqlite3 to "
        "postgresql://user@host/refund_bot. The target is migrated first and must hold no row; "
        "the source is read as of one moment (a running bot may keep writing to it); the copy "
        "commits whole or not at all, after every table's row count and integer sums match.",
    )
    copy.add_argument("source", metavar="SOURCE_URL")
    copy.add_argument("target", metavar="TARGET_URL")
    copy.set_defaults(handler=_cmd_db_copy)
    _add_reporting(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `refund-bot` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # transitions logs every callback it runs at INFO: with -v that is several lines per turn
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        config = with_database_url(load_config(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    handler: Command = args.handler
    return handler(args, config)


if __name__ == "__main__":
    sys.exit(main())
