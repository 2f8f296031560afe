"""Store URLs in the config and the environment, `check`'s store line, and `refund-bot db`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import bot.store._copy as _copy
from bot.cli import main
from bot.config import ConfigError, deep_merge, load_config, parse_config, with_database_url
from bot.domain import RefundState
from bot.store import (
    BadStoreUrl,
    Conversation,
    ConversationKey,
    DeskCase,
    Identity,
    OutboxMessage,
    SqliteStore,
    Store,
    mask,
    open_store,
    parse_store_url,
)
from bot.store.postgres import PostgresStore

from .postgres import Databases

if TYPE_CHECKING:
    from conftest import Make

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def write_config(tmp_path: Path, store: dict[str, Any]) -> Path:
    data = deep_merge(SHIPPED, {})
    data["store"] = store
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# --- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("sqlite:///var/refund-bot.sqlite3", "sqlite", Path("var/refund-bot.sqlite3")),
        ("sqlite:////srv/bot/store.sqlite3", "sqlite", Path("/srv/bot/store.sqlite3")),
        ("postgresql://bot:pw@db.internal:5432/refunds", "postgresql", None),
        ("postgres://bot@localhost/refunds?sslmode=require", "postgresql", None),
    ],
)
def test_store_urls_name_their_store(url: str, kind: str, path: Path | None) -> None:
    target = parse_store_url(url)
    assert (target.kind, target.path) == (kind, path)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://bot@db/refunds", "must start with sqlite:/// or postgresql://"),
        ("var/refund-bot.sqlite3", "must start with sqlite:/// or postgresql://"),
        ("sqlite://var/x.sqlite3", "is not a SQLite URL"),
        ("sqlite:///", "is not a SQLite URL"),
        ("postgresql://bot:secret@db", "names no database"),
        ("postgresql://bot:secret@db:port/refunds", "the port must be a number"),
        ("postgres:/refunds", "is not a PostgreSQL URL"),
    ],
)
def test_a_bad_store_url_says_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(BadStoreUrl, match=says) as info:
        parse_store_url(url)
    assert "secret" not in str(info.value)


def test_mask_hides_only_the_password() -> None:
    assert mask("postgresql://bot:s3cr@t@db:5432/r") == "postgresql://bot:***@db:5432/r"
    assert mask("postgresql://bot@db/r") == "postgresql://bot@db/r"
    assert mask("sqlite:///var/x.sqlite3") == "sqlite:///var/x.sqlite3"


# --- config ------------------------------------------------------------------------------------


def test_store_url_defaults_to_the_sqlite_file_next_to_the_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {}))
    assert config.store.target.url == f"sqlite:///{tmp_path / 'var' / 'refund-bot.sqlite3'}"
    assert config.store.path == tmp_path / "var" / "refund-bot.sqlite3"


def test_store_path_is_shorthand_for_a_sqlite_url(tmp_path: Path) -> None:
    by_path = load_config(write_config(tmp_path, {"path": "data/a.sqlite3"}))
    by_url = load_config(write_config(tmp_path, {"url": "sqlite:///data/a.sqlite3"}))
    expected = f"sqlite:///{tmp_path / 'data/a.sqlite3'}"
    assert by_path.store.target.url == by_url.store.target.url == expected
    assert by_path.store.path == by_url.store.path == tmp_path / "data" / "a.sqlite3"


def test_a_postgresql_url_in_the_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"url": "postgresql://bot@db/refunds"}))
    assert config.store.target.kind == "postgresql"
    assert config.store.url == "postgresql://bot@db/refunds"


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ({"url": "mysql://db/x"}, "store.url: 'mysql://db/x' is not a store URL"),
    ],
)
def test_a_bad_store_in_the_config_names_the_field(
    tmp_path: Path, store: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, store))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_the_environment_overrides_the_configured_store(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {}))
    env = {"REFUND_BOT_DATABASE_URL": "postgresql://bot:pw@db/refunds"}
    assert with_database_url(config, env).store.url == "postgresql://bot:pw@db/refunds"
    assert with_database_url(config, {}).store.target == config.store.target
    # a dumped config parses again with another path (as the tests' overrides do)
    again = parse_config(deep_merge(config.model_dump(mode="json"), {"store": {"path": "/x.db"}}))
    assert again.store.target.url == "sqlite:////x.db"
    with pytest.raises(ConfigError) as info:
        with_database_url(config, {"REFUND_BOT_DATABASE_URL": "pg://db"})
    assert info.value.problems[0].startswith("REFUND_BOT_DATABASE_URL: 'pg://db' is not a store")


def test_open_store_opens_the_store_a_url_names(tmp_path: Path, pg_databases: Databases) -> None:
    lite = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    url = pg_databases.create()
    pg = open_store(url)
    try:
        assert isinstance(lite, SqliteStore)
        assert isinstance(pg, PostgresStore)
        for store in (lite, pg):
            with store.unit_of_work() as uow:
                assert uow.mark_processed("k", AT) is True
    finally:
        lite.close()
        pg.close()
        pg_databases.drop(url)


# --- check -------------------------------------------------------------------------------------


def test_check_reports_the_store_it_would_use_with_the_password_masked(
    tmp_path: Path,
    pg_databases: Databases,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, {})
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert f"store: sqlite:///{tmp_path / 'var' / 'refund-bot.sqlite3'} (sqlite): reachable" in out
    assert not (tmp_path / "var").exists()  # check creates nothing

    url = pg_databases.create().replace("postgres@", "postgres:hunter2@")
    monkeypatch.setenv("REFUND_BOT_DATABASE_URL", url)
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "(postgresql): reachable, schema version 6 of 6" in out
    assert "hunter2" not in out
    assert "postgres:***@" in out

    monkeypatch.setenv("REFUND_BOT_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/x")
    assert main(["--config", str(config), "check"]) == 2
    err = capsys.readouterr().err
    assert "error: store postgresql://postgres:***@127.0.0.1:1/x: cannot be reached" in err
    assert "hunter2" not in err


# --- db migrate --------------------------------------------------------------------------------


def test_db_migrate_brings_an_empty_database_up_to_date_once(
    tmp_path: Path, pg_databases: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, {}))
    url = pg_databases.create(migrated=False)
    assert main(["--config", config, "db", "migrate", url]) == 0
    assert "was schema version 0 of 6; now schema version 6 of 6" in capsys.readouterr().out
    assert main(["--config", config, "db", "migrate", url]) == 0
    assert "was schema version 6 of 6; now schema version 6 of 6" in capsys.readouterr().out
    assert main(["--config", config, "db", "migrate"]) == 0  # the configured SQLite file
    assert (tmp_path / "var" / "refund-bot.sqlite3").is_file()
    assert main(["--config", config, "db", "migrate", "mysql://x/y"]) == 2
    assert "db migrate: URL: 'mysql://x/y' is not a store URL" in capsys.readouterr().err


# --- db copy -----------------------------------------------------------------------------------


def fill(store: Store, make: Make) -> None:
    """One of everything the store keeps."""
    with store.unit_of_work() as uow:
        ticket = make.seed_ticket(uow)
        uow.upsert_order(make.order("O2", cash_paid_fen=5_000, coupon_fen=0, list_price_fen=5_000))
        uow.link_identity(ticket.customer_id, Identity("telegram", "1001"))
        uow.set_customer_locale(ticket.customer_id, "en")
        uow.add_event(make.event(ticket.ticket_no))
        uow.add_evidence(make.evidence(ticket.ticket_no))
        uow.add_refund(make.refund("k1", 3_000, state=RefundState.PAID))
        uow.add_refund(make.refund("k2", 2_000, state=RefundState.FAILED))
        uow.save_conversation(
            Conversation(
                key=ConversationKey("telegram", "1001"),
                flow="apply",
                state="evidence",
                data={"order": "O1", "番号": [1, 2]},
                customer_id=ticket.customer_id,
                remind_at=AT,
            )
        )
        sent = uow.enqueue(OutboxMessage(channel="telegram", recipient="1001", payload={"t": "a"}))
        uow.mark_sent(sent.outbox_id or 0, AT)
        uow.enqueue(OutboxMessage(channel="telegram", recipient="1001", payload={"t": "b"}))
        uow.mark_processed("tg:update:7", AT)
        uow.next_ticket_no(AT.date())
        case = uow.add_case(
            DeskCase(
                reason="customer_asked",
                opened_at=AT,
                updated_at=AT,
                ticket_no="T20261124-0001",
                customer_id=ticket.customer_id,
                chat_id=-100123,
                thread_id=9,
                card_due=False,
            )
        )
        uow.link_message(-100123, 55, case.case_id or 0)
        uow.remember_agent(42, "小王")


def contents(store: Store) -> dict[str, Any]:
    """Everything fill() wrote, read back through the store."""
    key = ConversationKey("telegram", "1001")
    with store.unit_of_work() as uow:
        return {
            "customer": uow.customer_by_identity(Identity("telegram", "1001")),
            "orders": uow.orders_of(1),
            "tickets": uow.tickets_of_customer(1),
            "events": uow.events_of("T20261124-0001"),
            "evidence": uow.evidence_of("T20261124-0001"),
            "refunds": uow.refunds_of_order("O1"),
            "conversation": uow.conversation(key),
            "due": uow.conversations_due(AT),
            "outbox": uow.pending_outbox(),
            "case": uow.case_of_message(-100123, 55),
            "agents": uow.agent_names(),
            "seen": uow.mark_processed("tg:update:7", AT),
        }


def test_db_copy_moves_a_sqlite_store_to_postgresql_and_back(
    tmp_path: Path, pg_databases: Databases, make: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, {}))
    source = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    with SqliteStore.open(tmp_path / "old.sqlite3") as lite:
        fill(lite, make)
        expected = contents(lite)
    target = pg_databases.create(migrated=False)
    assert main(["--config", config, "db", "copy", source, target]) == 0
    out = capsys.readouterr().out
    assert "refunds: 2 rows" in out
    assert "row count and integer sums checked" in out
    with PostgresStore.open(target) as pg:
        assert contents(pg) == expected
        with pg.unit_of_work() as uow:  # ids go on after the copied ones
            assert (uow.add_event(make.event("T20261124-0001")).event_id or 0) > 1
            assert uow.next_ticket_no(AT.date()) == "T20261124-0002"
    # and back into a new SQLite file: the same store again
    back = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    assert main(["--config", config, "db", "copy", target, back]) == 0
    with SqliteStore.open(tmp_path / "back.sqlite3") as again:
        copied = contents(again)
    assert copied["events"][:1] == expected["events"]
    assert {k: v for k, v in copied.items() if k != "events"} == {
        k: v for k, v in expected.items() if k != "events"
    }


def test_db_copy_refuses_a_target_that_holds_data(
    tmp_path: Path, pg_databases: Databases, make: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, {}))
    with SqliteStore.open(tmp_path / "old.sqlite3") as lite:
        fill(lite, make)
    target = pg_databases.create()
    with PostgresStore.open(target) as pg, pg.unit_of_work() as uow:
        uow.mark_processed("already here", AT)
    assert (
        main(["--config", config, "db", "copy", f"sqlite:///{tmp_path / 'old.sqlite3'}", target])
        == 1
    )
    err = capsys.readouterr().err
    assert "db copy: nothing copied:" in err
    assert "already holds data (1 in processed_updates)" in err
    with PostgresStore.open(target) as pg, pg.unit_of_work() as uow:
        assert uow.customer_by_phone("+8613800138000") is None


def test_db_copy_writes_nothing_when_the_check_after_it_fails(
    tmp_path: Path,
    pg_databases: Databases,
    make: Make,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(write_config(tmp_path, {}))
    with SqliteStore.open(tmp_path / "old.sqlite3") as lite:
        fill(lite, make)
    target = pg_databases.create()
    real = _copy._copy_table

    def lose_the_agents(src: Any, dst: Any, table: Any, booleans: Any) -> int:
        return 0 if table.name == "desk_agents" else real(src, dst, table, booleans)

    monkeypatch.setattr(_copy, "_copy_table", lose_the_agents)
    assert (
        main(["--config", config, "db", "copy", f"sqlite:///{tmp_path / 'old.sqlite3'}", target])
        == 1
    )
    assert "desk_agents: 1 rows read, 0 written" in capsys.readouterr().err
    with PostgresStore.open(target) as pg, pg.unit_of_work() as uow:
        assert uow.customer_by_phone("+8613800138000") is None  # all or nothing


def test_db_copy_says_what_is_wrong_with_its_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, {}))
    assert main(["--config", config, "db", "copy", "var/x.sqlite3", "postgresql://h/db"]) == 2
    assert "db copy: SOURCE_URL: 'var/x.sqlite3' is not a store URL" in capsys.readouterr().err
    assert main(["--config", config, "db", "copy", "sqlite:///a", "postgresql://u:pw@h"]) == 2
    err = capsys.readouterr().err
    assert "db copy: TARGET_URL: 'postgresql://u:***@h' names no database" in err
    missing = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    assert main(["--config", config, "db", "copy", missing, f"sqlite:///{tmp_path / 'b'}"]) == 1
    assert "no such SQLite file" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite3").exists()
