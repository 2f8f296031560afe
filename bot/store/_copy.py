"""Whole-database operations for `refund-bot db`: what a store holds, probing it, and copying one
store's database into another (a SQLite deployment moving to PostgreSQL).

A copy reads the source in one read transaction (a running SQLite bot keeps writing; the copy
is of one moment) and writes the target in one transaction, tables in foreign-key order, then
checks every table's row count and the sum of every integer column on both sides. Nothing is
written unless all of it is; a target that holds any row is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from graphlib import TopologicalSorter
from typing import Any

from bot.store._dialect import SqliteDialect
from bot.store._interface import StoreError
from bot.store._migrations import load_migrations
from bot.store._url import StoreUrl

_BATCH = 1000
_SQLITE = SqliteDialect()


class CopyRefused(StoreError):
    """The copy cannot be made (the target is not empty, the source does not exist...)."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    integers: tuple[str, ...]  # columns whose sums are compared (ids, money, counters)
    parents: frozenset[str]  # tables its foreign keys point to


@dataclass(frozen=True, slots=True)
class Probe:
    """What `check` says about a store: reachable, and at which schema version."""

    reachable: bool
    detail: str  # why not, or "schema version 3 of 3" / "no database yet"


class _Db:
    """One open database of either kind, with the catalog questions a copy asks."""

    def __init__(self, target: StoreUrl, conn: Any) -> None:
        self.target = target
        self.conn = conn
        self.sqlite = target.kind == "sqlite"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        return list(self.conn.execute(sql, params).fetchall())

    def tables(self) -> dict[str, Table]:
        if self.sqlite:
            names = [
                r[0]
                for r in self.rows(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            found = {}
            for name in names:
                info = self.rows(f"PRAGMA table_info({name})")
                ddl = self.rows("SELECT sql FROM sqlite_master WHERE name = ?", (name,))[0][0]
                flags = {c for c in (r[1] for r in info) if f"CHECK ({c} IN (0, 1))" in ddl}
                found[name] = Table(
                    name,
                    tuple(r[1] for r in info),
                    tuple(r[1] for r in info if r[2] == "INTEGER" and r[1] not in flags),
                    frozenset(r[2] for r in self.rows(f"PRAGMA foreign_key_list({name})")),
                )
            return found
        found = {}
        names = [
            r[0]
            for r in self.rows(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            )
        ]
        for name in names:
            info = self.rows(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
                (name,),
            )
            parents = self.rows(
                "SELECT confrelid::regclass::text FROM pg_constraint"
                " WHERE conrelid = ?::regclass AND contype = 'f'",
                (name,),
            )
            found[name] = Table(
                name,
                tuple(r[0] for r in info),
                tuple(r[0] for r in info if r[1] in ("bigint", "integer")),
                frozenset(r[0] for r in parents),
            )
        return found

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    def sums(self, table: Table) -> dict[str, int]:
        if not table.integers:
            return {}
        row = self.rows(
            "SELECT "
            + ", ".join(f"coalesce(sum({c}), 0)" for c in table.integers)
            + f" FROM {table.name}"
        )[0]
        return {c: int(v) for c, v in zip(table.integers, row, strict=True)}


@contextmanager
def _open(target: StoreUrl, *, create: bool) -> Iterator[_Db]:
    """The database behind `target`, migrated; a SQLite file must exist unless `create`."""
    if target.kind == "sqlite":
        from bot.store._sqlite import SqliteStore

        assert target.path is not None
        if not create and not target.path.is_file():
            raise CopyRefused(f"{target.masked}: no such SQLite file")
        SqliteStore.open(target.path).close()  # creates and migrates it
        with closing(sqlite3.connect(target.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            yield _Db(target, conn)
        return
    import psycopg

    from bot.store._postgres import connect, migrate

    try:
        pg = connect(target.url)
    except psycopg.OperationalError as exc:
        raise StoreError(f"{target.masked}: cannot reach the database: {exc}") from exc
    with pg:
        migrate(pg, load_migrations("postgresql"))
        yield _Db(target, pg)


def probe(target: StoreUrl) -> Probe:
    """Whether the store can be reached, and its schema version, without changing anything."""
    latest = len(load_migrations(target.kind))
    if target.kind == "sqlite":
        assert target.path is not None
        if not target.path.exists():
            return Probe(True, "no database yet: the first start creates it")
        try:
            with closing(sqlite3.connect(f"file:{target.path}?mode=ro", uri=True)) as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            return Probe(False, str(exc))
        return Probe(True, f"schema version {version} of {latest}")
    import psycopg

    from bot.store._postgres import schema_version

    try:
        with psycopg.connect(target.url, autocommit=True, connect_timeout=5) as conn:
            version = schema_version(conn)
    except psycopg.Error as exc:
        return Probe(False, str(exc).strip())
    return Probe(True, f"schema version {version} of {latest}")


@dataclass(frozen=True, slots=True)
class Copied:
    rows: dict[str, int]  # per table


def _value(value: Any, to_sqlite: bool, boolean: bool) -> Any:
    if to_sqlite:
        if isinstance(value, datetime):
            return _SQLITE.ts(value)
        if isinstance(value, date):
            return value.isoformat()
        return int(value) if isinstance(value, bool) else value
    return bool(value) if boolean and value is not None else value


def copy_database(source: StoreUrl, target: StoreUrl) -> Copied:
    """Copy every row of `source` into the empty `target` (both migrated first), then verify
    counts and integer sums per table. CopyRefused / StoreError say what stopped it."""
    if source.url == target.url:
        raise CopyRefused("the source and the target are the same database")
    with _open(source, create=False) as src, _open(target, create=True) as dst:
        tables = src.tables()
        target_tables = dst.tables()
        if set(tables) != set(target_tables):
            raise CopyRefused(f"the two schemas differ: {sorted(set(tables) ^ set(target_tables))}")
        held = {name: n for name in tables if (n := dst.count(name))}
        if held:
            listed = ", ".join(f"{n} in {name}" for name, n in sorted(held.items()))
            raise CopyRefused(
                f"{target.masked} already holds data ({listed}): copy only into an empty store"
            )
        order = list(
            TopologicalSorter(
                {t.name: t.parents - {t.name} for t in tables.values()}
            ).static_order()
        )
        booleans = _booleans(dst) if not dst.sqlite else {}
        # one snapshot of a database that may still be written to
        src.conn.execute("BEGIN" if src.sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            dst.conn.execute("BEGIN")
            try:
                copied = {name: _copy_table(src, dst, tables[name], booleans) for name in order}
                if not dst.sqlite:
                    _move_identities(dst)
                _verify(src, dst, tables)
            except BaseException:
                dst.conn.execute("ROLLBACK")
                raise
            dst.conn.execute("COMMIT")
        finally:
            src.conn.execute("ROLLBACK")
    return Copied(copied)


def _booleans(db: _Db) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table, column in db.rows(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND data_type = 'boolean'"
    ):
        found.setdefault(table, set()).add(column)
    return found


def _copy_table(src: _Db, dst: _Db, table: Table, booleans: dict[str, set[str]]) -> int:
    columns = ", ".join(table.columns)
    marks = ", ".join("?" if dst.sqlite else "%s" for _ in table.columns)
    insert = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
    flags = [c in booleans.get(table.name, set()) for c in table.columns]
    cursor = src.conn.execute(f"SELECT {columns} FROM {table.name}")
    total = 0
    while batch := cursor.fetchmany(_BATCH):
        values = [
            tuple(_value(v, dst.sqlite, flag) for v, flag in zip(row, flags, strict=True))
            for row in batch
        ]
        if dst.sqlite:
            dst.conn.executemany(insert, values)
        else:
            with dst.conn.cursor() as cur:
                cur.executemany(insert, values)
        total += len(values)
    return total


def _move_identities(dst: _Db) -> None:
    """Identity columns continue after the highest id copied."""
    for table, column in dst.rows(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND is_identity = 'YES'"
    ):
        dst.rows(
            f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max({column}), 0) + 1, false)"
            f" FROM {table}",
            (table, column),
        )


def _verify(src: _Db, dst: _Db, tables: dict[str, Table]) -> None:
    for table in tables.values():
        counts = src.count(table.name), dst.count(table.name)
        if counts[0] != counts[1]:
            raise StoreError(f"{table.name}: {counts[0]} rows read, {counts[1]} written")
        sums = src.sums(table), dst.sums(table)
        if sums[0] != sums[1]:
            raise StoreError(f"{table.name}: sums differ after the copy: {sums[0]} / {sums[1]}")
