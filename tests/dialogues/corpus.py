"""The dialogue corpus shared by the pytest plugin (conftest.py) and the coverage gate: where the
scripts are, which config they run over, and the results of the scripts run in this session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.dialogue_tests import ScriptResult

CORPUS = Path(__file__).resolve().parent
CONFIG = CORPUS.parents[1] / "config.yaml"
# script path -> its result, filled by the YAML items so the coverage gate need not run them again
RESULTS = pytest.StashKey[dict[Path, ScriptResult]]()


def results(config: pytest.Config) -> dict[Path, ScriptResult]:
    return config.stash.setdefault(RESULTS, {})
