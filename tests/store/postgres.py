"""Throwaway PostgreSQL databases for the tests: one migrated template per session, cloned per test.

The server is the one at REFUND_BOT_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test,
trust authentication): the tests create their own databases there and drop them afterwards. There
is no skip: without a server the PostgreSQL tests fail, saying so.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from bot.store._migrations import load_migrations
from bot.store._postgres import connect, migrate

PG_URL = os.environ.get("REFUND_BOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def url_of(database: str) -> str:
    """PG_URL pointing at another database of the same server."""
    return urlunsplit(urlsplit(PG_URL)._replace(path="/" + database))


class Databases:
    """Creates databases on the test server and drops every one of them at the end."""

    def __init__(self) -> None:
        try:
            self._admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"the PostgreSQL tests need a server at {PG_URL} (set REFUND_BOT_TEST_PG_URL to"
                f" use another): {exc}",
                pytrace=False,
            )
        self._prefix = f"rbt_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._made: list[str] = []
        self._template: str | None = None

    def create(self, *, migrated: bool = True) -> str:
        """A new database (a clone of the migrated template, or empty); its URL."""
        name = f"{self._prefix}_{len(self._made)}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if migrated:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(self.template()))
        self._admin.execute(query)
        self._made.append(name)
        return url_of(name)

    def template(self) -> str:
        if self._template is None:
            name = f"{self._prefix}_tpl"
            self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            self._made.append(name)
            with connect(url_of(name)) as conn:
                migrate(conn, load_migrations("postgresql"))
            self._template = name
        return self._template

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def close(self) -> None:
        for name in reversed(self._made):
            self.drop(url_of(name))
        self._admin.close()
