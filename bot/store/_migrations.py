"""Versioned schema migrations, one folder per database, applied when a store is opened.

Migrations are the files `bot/store/migrations/<dialect>/NNNN_name.sql`, applied in order; both
folders carry the same numbers, and tests/store/test_schemas.py checks that the two schemas they
build have the same tables, columns, keys, constraints, indexes and triggers.

SQLite: the schema version is `PRAGMA user_version` (it lives in the database header, so it commits
or rolls back with the migration itself). All pending migrations run in one `BEGIN IMMEDIATE`
transaction: two processes opening a fresh file at once cannot both migrate it, and a failing
migration leaves the file as it was. PostgreSQL: see bot/store/_postgres.py (`migrate`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bot.store._interface import StoreError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(StoreError):
    """The database was migrated by a newer program than this one: refuse rather than guess."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """Split an SQL script into single statements (trigger bodies with inner `;` stay whole)."""
    statements: list[str] = []
    pending: list[str] = []
    for line in script.splitlines(keepends=True):
        pending.append(line)
        text = "".join(pending)
        # complete_statement understands CREATE TRIGGER ... BEGIN ...; END; — a naive split on ';'
        # would not.
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            pending = []
    rest = [ln for ln in pending if ln.strip() and not ln.strip().startswith("--")]
    if rest:
        raise ValueError(f"incomplete SQL statement at the end of the script: {''.join(rest)!r}")
    return tuple(statements)


@cache
def load_migrations(dialect: str = "sqlite") -> tuple[Migration, ...]:
    """The migrations shipped with the package for one database, checked to be numbered 1, 2, 3…
    without gaps. A PostgreSQL migration is one script (its functions have `;` inside `$$`)."""
    folder = resources.files("bot.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=split_statements(text) if dialect == "sqlite" else (text,),
            )
        )
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise RuntimeError(f"migrations must be numbered {expected}, found {found}")
    return tuple(found)


def check_version(current: int, migrations: Sequence[Migration]) -> None:
    """SchemaTooNew when the database is past the last migration this program knows."""
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, this program knows up to {latest}"
        )


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[int]:
    """Apply the pending migrations in one transaction; return the versions applied.

    `conn` must be in autocommit mode (isolation_level=None) with no transaction open.
    """
    latest = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current == latest:
        return []  # the usual case: no lock taken, nothing written
    check_version(current, migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        current = schema_version(conn)
        applied: list[int] = []
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            # PRAGMA takes no parameters; the version is an int we parsed from a file name.
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
            applied.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied
