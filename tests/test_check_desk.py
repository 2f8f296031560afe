"""`refund-bot check` on the agent desk (issue 15): no desk configured is said, with what a
customer is offered instead; a desk without agents too."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import desk_warnings, main
from tests.engine.conftest import test_config

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_config_has_no_desk_and_check_warns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--config", str(REPO / "config.yaml"), "check"]) == 0
    out = capsys.readouterr().out
    assert "warning: no agent desk is configured (agent_desk.chat_id)" in out
    assert "offered nothing (agent_desk.contact is empty) instead" in out


def test_desk_warnings_name_what_is_offered_or_missing(tmp_path: Path) -> None:
    contact = {"hotline": "400-800-1234", "email": "help@example.com"}
    no_desk = test_config(tmp_path, agent_desk={"chat_id": None, "contact": contact})
    (warning,) = desk_warnings(no_desk)
    assert "offered agent_desk.contact.hotline, agent_desk.contact.email instead" in warning
    nobody = test_config(tmp_path, agent_desk={"chat_id": -100123, "agent_ids": []})
    assert desk_warnings(nobody) == ["agent_desk.agent_ids is empty: nobody may act at the desk"]
    desk = test_config(tmp_path, agent_desk={"chat_id": -100123, "agent_ids": [9001]})
    assert desk_warnings(desk) == []
