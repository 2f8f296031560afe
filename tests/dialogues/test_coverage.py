"""CI's coverage gate: the whole corpus must visit every declared state and fire at least 90 % of
the declared transitions. Scripts already run in this session (as their own test items) are not
run again; the rest (e.g. under -k) are run here."""

from __future__ import annotations

import pytest

from bot.app import load_dialogue
from bot.dialogue_tests import THRESHOLD, Coverage, find_scripts, report, run_script_sync
from tests.dialogues.corpus import CONFIG, CORPUS, results


def test_the_corpus_covers_every_state_and_enough_transitions(
    request: pytest.FixtureRequest,
) -> None:
    done = results(request.config)
    coverage = Coverage()
    scripts = find_scripts([CORPUS])
    assert len(scripts) >= 30, f"the corpus has {len(scripts)} scripts, SPEC §5 asks for ≥ 30"
    for path in scripts:
        result = done.get(path) or run_script_sync(path, CONFIG)
        coverage.merge(result.coverage)
    flows, _ = load_dialogue()
    figures = report(coverage, flows)
    problems = figures.problems(THRESHOLD)
    assert not problems, "\n".join([*problems, "", *figures.lines()])
