"""Both databases' migrations build the same schema: tables, columns, keys, constraints, indexes
and triggers, read back from each database's own catalog."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import SqliteStore
from bot.store._migrations import load_migrations
from bot.store._postgres import connect

from .postgres import Databases

# The type a PostgreSQL column has for each SQLite storage class (STRICT tables: INTEGER, TEXT).
SAME_TYPE = {
    "INTEGER": {"bigint", "boolean"},
    "TEXT": {"text", "json", "timestamp with time zone", "date"},
}
# SQLite keeps a flag in an INTEGER column checked to be 0 or 1; PostgreSQL has a boolean type.
_FLAG_CHECK = re.compile(r"CHECK \((\w+) IN \(0, 1\)\)")


@pytest.fixture
def sqlite_schema(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "s.sqlite3"
    SqliteStore.open(path).close()
    conn = sqlite3.connect(path)
    try:
        return _sqlite(conn)
    finally:
        conn.close()


@pytest.fixture
def pg_schema(pg_databases: Databases) -> Iterator[dict[str, Any]]:
    url = pg_databases.create()
    with connect(url) as conn:
        yield _postgres(conn)
    pg_databases.drop(url)


def _sqlite(conn: sqlite3.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in names:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        flags = set(_FLAG_CHECK.findall(ddl))
        columns = [
            (
                name,
                "boolean" if name in flags else kind,
                bool(notnull) or (pk == 1 and kind == "INTEGER"),
            )
            for _, name, kind, notnull, _, pk in info
        ]
        pk = [name for _, name, *_, pk in sorted(info, key=lambda r: r[5]) if pk]
        indexes, uniques = {}, set()
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
            if origin == "c":
                indexes[name] = (cols, bool(unique), bool(partial))
            elif origin == "u":
                uniques.add(cols)
        fks: dict[int, list[Any]] = {}
        for fk_id, _, ref, col, ref_col, _, on_delete, _ in conn.execute(
            f"PRAGMA foreign_key_list({table})"
        ):
            fks.setdefault(fk_id, [ref, [], [], on_delete])
            fks[fk_id][1].append(col)
            fks[fk_id][2].append(ref_col)
        triggers = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
            )
        }
        tables[table] = {
            "columns": columns,
            "primary key": pk,
            "unique": uniques,
            "foreign keys": sorted((ref, tuple(c), tuple(r), d) for ref, c, r, d in fks.values()),
            "checks": ddl.count("CHECK (") - len(flags),
            "indexes": indexes,
            "triggers": triggers,
        }
    return tables


_PG_ACTION = {
    "a": "NO ACTION",
    "c": "CASCADE",
    "n": "SET NULL",
    "r": "RESTRICT",
    "d": "SET DEFAULT",
}


def _postgres(conn: Any) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    names = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
    ]

    def constraint_columns(table: str, kind: str) -> list[tuple[str, ...]]:
        return [
            tuple(r[0])
            for r in conn.execute(
                "SELECT array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)"
                " FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = %s",
                (table, kind),
            )
        ]

    for table in names:
        columns = [
            (name, kind, notnull)
            for name, kind, notnull in conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (table,),
            )
        ]
        fks = [
            (ref, tuple(cols), tuple(ref_cols), _PG_ACTION[action])
            for ref, cols, ref_cols, action in conn.execute(
                "SELECT c.confrelid::regclass::text,"
                " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
                "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
                " array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
                "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),"
                " c.confdeltype FROM pg_constraint c WHERE c.conrelid = %s::regclass"
                " AND c.contype = 'f'",
                (table,),
            )
        ]
        indexes = {
            name: (tuple(cols), unique, partial)
            for name, cols, unique, partial in conn.execute(
                "SELECT i.relname, array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY"
                "  k(n, o) JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n"
                "  ORDER BY k.o), x.indisunique, x.indpred IS NOT NULL"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " WHERE x.indrelid = %s::regclass AND NOT EXISTS"
                " (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
                (table,),
            )
        }
        triggers = {
            r[0]
            for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                (table,),
            )
        }
        pk = constraint_columns(table, "p")
        tables[table] = {
            "columns": columns,
            "primary key": list(pk[0]) if pk else [],
            "unique": set(constraint_columns(table, "u")),
            "foreign keys": sorted(fks),
            "checks": len(constraint_columns(table, "c")),
            "indexes": indexes,
            "triggers": triggers,
        }
    return tables


def test_both_migration_folders_have_the_same_numbers_and_names() -> None:
    assert [(m.version, m.name) for m in load_migrations("sqlite")] == [
        (m.version, m.name) for m in load_migrations("postgresql")
    ]


def test_both_schemas_have_the_same_tables_columns_constraints_and_indexes(
    sqlite_schema: dict[str, Any], pg_schema: dict[str, Any]
) -> None:
    assert sorted(pg_schema) == sorted(sqlite_schema)
    for table, lite in sqlite_schema.items():
        pg = pg_schema[table]
        assert [c[0] for c in pg["columns"]] == [c[0] for c in lite["columns"]], table
        for (name, lite_type, lite_notnull), (_, pg_type, pg_notnull) in zip(
            lite["columns"], pg["columns"], strict=True
        ):
            expected = {"boolean"} if lite_type == "boolean" else SAME_TYPE[lite_type]
            assert pg_type in expected, f"{table}.{name}: {pg_type} for SQLite {lite_type}"
            assert pg_notnull == lite_notnull, f"{table}.{name}: NOT NULL differs"
        for part in ("primary key", "unique", "foreign keys", "checks", "indexes", "triggers"):
            assert pg[part] == lite[part], f"{table}: {part} differ"
