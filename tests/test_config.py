"""config.yaml validation: every mistake names the field and the problem, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.config import ConfigError, Secrets, deep_merge, load_config, parse_config
from bot.domain import EvidenceKind, Reason, SubReason

REPO = Path(__file__).resolve().parent.parent
SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


def write(tmp_path: Path, override: dict[str, Any], base: Any = None) -> Path:
    path = tmp_path / "config.yaml"
    data = deep_merge(SHIPPED if base is None else base, override)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def problems(tmp_path: Path, override: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, override))
    return info.value.problems


def test_shipped_config_is_valid_and_complete() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.locale == "zh-CN"
    assert config.policy.seven_day.window_days == 7
    assert config.policy.fast_refund.max_amount == 20000  # "200.00" yuan in fen
    assert config.store.path == REPO / "var" / "refund-bot.sqlite3"  # relative to the file
    req = config.policy.evidence.requirement(Reason.SERVICE_ISSUE, SubReason.BENEFITS_MISSING)
    assert req.min_count == 1
    assert req.max_size_bytes == 20 * 1024 * 1024
    assert req.allowed_kinds == (EvidenceKind.PHOTO, EvidenceKind.PDF)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"policy": {"seven_day": {"window_days": 0}}}, "policy.seven_day.window_days: must be ≥ 1"),
        ({"policy": {"seven_day": {"window_days": "seven"}}}, "policy.seven_day.window_days: must be a whole number"),
        ({"policy": {"seven_day": {"excluded_categories": ["games"]}}}, "policy.seven_day.excluded_categories.games.[key]: must be one of"),
        ({"policy": {"evidence": {"default": {"max_size_mb": 25}}}}, "policy.evidence.default.max_size_mb: must be ≤ 20"),
        ({"policy": {"evidence": {"rules": {"refund_me": {"min_count": 1}}}}}, "unknown reason 'refund_me'"),
        ({"policy": {"evidence": {"rules": {"seven_day.duplicate": {"min_count": 1}}}}}, "'duplicate' is not a sub-reason of seven_day"),
        ({"policy": {"evidence": {"rules": {"service_issue": {"min_count": 12}}}}}, "rules.service_issue: min_count must not exceed max_files"),
        ({"policy": {"evidence": {"default": {"allowed_types": ["gif"]}}}}, "policy.evidence.default.allowed_types.0: must be one of"),
        ({"policy": {"pro_rata_unit": "week"}}, "policy.pro_rata_unit: must be one of 'day' or 'month'"),
        ({"policy": {"fast_refund": {"max_amount": "12.345"}}}, "policy.fast_refund.max_amount"),
        ({"policy": {"review": {"priority_working_days": 5}}}, "priority_working_days must not exceed normal_working_days"),
        ({"policy": {"payout_windows": {"bank_card": {"min_working_days": 6, "max_working_days": 5}}}}, "min_working_days must not exceed max_working_days"),
        ({"calendar": {"fallback_holidays": ["2027-13-01"]}}, "calendar.fallback_holidays.0"),
        ({"store": {"processed_retention_days": 1}}, "store.processed_retention_days: must be ≥ 2"),
        ({"calendar": {"fallback_workdays": ["2027-01-01"]}}, "both a holiday and a working day: 2027-01-01"),
        ({"telegram": {"mode": "webhook"}}, "webhook.url is required when mode is webhook"),
        ({"telegram": {"webhook": {"port": 70000}}}, "telegram.webhook.port: must be ≤ 65535"),
        ({"agent_desk": {"agent_ids": ["alice"]}}, "agent_desk.agent_ids.0: must be a whole number"),
        ({"locale": "fr"}, "locale: must be one of 'zh-CN' or 'en'"),
        ({"polcy": {}}, "polcy: unknown field (check the spelling)"),
        ({"legal": {"cpl_25": {"cite": {"en": ""}}}}, "legal.cpl_25: cite: missing locale(s) en"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_field_and_the_problem(
    tmp_path: Path, override: dict[str, Any], expected: str
) -> None:
    found = problems(tmp_path, override)
    assert any(expected in p for p in found), found


def test_missing_legal_reference_is_named(tmp_path: Path) -> None:
    base = dict(SHIPPED)
    base["legal"] = {k: v for k, v in SHIPPED["legal"].items() if k != "cpl_44"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="legal: missing reference"):
        load_config(path)


def test_payout_window_for_every_channel(tmp_path: Path) -> None:
    base = deep_merge(SHIPPED, {})
    del base["policy"]["payout_windows"]["alipay"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="missing channel"):
        load_config(path)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("locale: zh-CN\npolicy:\n  seven_day: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_check_ok_and_failure_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(REPO / "config.yaml"), "check"]) == 0
    assert "ok" in capsys.readouterr().out
    bad = write(tmp_path, {"policy": {"seven_day": {"window_days": 0}}})
    assert main(["--config", str(bad), "check"]) == 2
    err = capsys.readouterr().err
    assert "policy.seven_day.window_days: must be ≥ 1" in err
    assert "Traceback" not in err


def test_secrets_come_from_the_environment() -> None:
    secrets = Secrets.from_env({"REFUND_BOT_TOKEN": "123:abc", "REFUND_BOT_WEBHOOK_SECRET": ""})
    assert secrets.token == "123:abc"
    assert secrets.webhook_secret is None


def test_a_dumped_config_reads_back_the_same() -> None:
    config = load_config(REPO / "config.yaml")
    again = parse_config(config.model_dump(mode="json"))
    assert again.policy.fast_refund.max_amount == config.policy.fast_refund.max_amount == 20000
    assert again == config


def test_cli_check_names_the_policy_fingerprint_and_each_years_calendar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.rules import policy_fingerprint

    config = load_config(REPO / "config.yaml")
    assert main(["--config", str(REPO / "config.yaml"), "check"]) == 0
    out = capsys.readouterr().out
    assert (
        f"policy fingerprint (stamped on every decision): {policy_fingerprint(config.policy)}"
        in out
    )
    years = [line.strip() for line in out.split("working days by year:\n")[1].splitlines()]
    assert any(line.startswith("2027: ") for line in years)  # the year config.yaml falls back for
    for line in years:  # the package or the fallback, whichever the installed release gives
        assert "chinese-calendar" in line or "config fallback" in line, line
