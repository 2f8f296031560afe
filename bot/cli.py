"""`refund-bot` command line: check, orders import (console, run, dialogues, diagram follow)."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.config import Config, ConfigError, load_config
from bot.orders_import import ImportFileError, format_errors, import_orders, parse_orders
from bot.store import StoreError
from bot.store.sqlite import SqliteStore

log = logging.getLogger("bot")

Command = Callable[[argparse.Namespace, Config], int]


def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    print(f"{args.config}: ok")
    return 0


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
    try:
        store = SqliteStore.open(config.store.path)
    except (OSError, sqlite3.Error, StoreError) as exc:
        print(f"orders import: cannot open the store {config.store.path}: {exc}", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refund-bot", description="小年卡盟 refund assistant")
    parser.add_argument(
        "--config", type=Path, default=Path("config.yaml"), help="path to config.yaml"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate config.yaml (and flows and message catalogs)")
    check.set_defaults(handler=_cmd_check)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `refund-bot` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    handler: Command = args.handler
    return handler(args, config)


if __name__ == "__main__":
    sys.exit(main())
