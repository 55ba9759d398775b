"""The scoring core is held bit-identical to its recorded outputs (tests/data/).

Every field of every ``StepScore`` of the 50 shared trials and of a recorded demo run is
compared exactly (the encoded JSON bytes: floats by their shortest repr, ints and floats
kept apart). A change of the scores that is intended regenerates the fixture with
``python -m tests.scoring_fixture`` and says why in its commit.
"""

from pathlib import Path

import orjson
import pytest

import detectors.scoring as scoring
from tests.scoring_fixture import demo_scores, read_fixture, score_trial, trial_paths

RECORDS = read_fixture()
TRIALS = {r["source"]: r["scores"] for r in RECORDS if r["kind"] == "trial"}
DEMO = [r for r in RECORDS if r["kind"] == "demo"]


def _same(got: list, want: list, source: str) -> None:
    assert len(got) == len(want), source
    for g, w in zip(got, want, strict=True):
        assert orjson.dumps(g) == orjson.dumps(w), (source, g, w)


def test_fixture_covers_every_trial_and_a_demo_with_recoveries():
    assert sorted(TRIALS) == [p.name for p in trial_paths()]
    assert len(TRIALS) == 50
    assert len(DEMO) == 30
    kinds = {e["kind"] for r in DEMO for e in r["events"]}
    assert kinds == {"step", "recovery_applied"}
    flags = {f for r in RECORDS for s in r["scores"] for f in s[4]}
    assert flags == {"runaway", "self_imitation", "over_exploitation"}


@pytest.mark.parametrize("path", trial_paths(), ids=lambda p: p.name[:60])
def test_trial_scores_identical(path):
    _same(score_trial(path), TRIALS[path.name], path.name)


def test_demo_scores_identical():
    for rec in DEMO:
        _same(demo_scores(rec["spec"], rec["events"]), rec["scores"], rec["source"])


def test_no_compiled_scorer_shadows_the_sources():
    # The mypyc build is gone (issue 13); an extension module left next to the sources by
    # an older editable install would be imported instead of them. Delete any it names.
    here = Path(scoring.__file__).parent
    left = sorted(p.name for p in here.iterdir() if p.suffix in (".so", ".pyd"))
    assert not left, f"remove these old compiled modules from {here}: {left}"
    assert scoring.scorer.__file__.endswith("scorer.py")
