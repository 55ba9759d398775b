"""The mypyc build of the scorer gives exactly the pure scorer's results.

``pip install -e .`` compiles ``detectors/scoring/scorer.py`` with mypyc when it can (see
setup.py); :mod:`detectors.scoring` then uses the compiled module. Both implementations
must agree bit for bit: every StepScore of the 50 recorded trials is compared through its
``repr`` (floats round-trip exactly; an int where a float was expected shows too), and
so is the state after each trial and after a checkpoint round trip across the two.

Skipped when no usable compiled module exists (the reason is in the skip message), except
under ``CI=true``: CI installs the package, which must compile it.
"""

import os

import pytest

import detectors.scoring as scoring
from detectors.scoring import StepScore
from workers.recordings import BUNDLED_DIR as DATA
from workers.recordings import events_from_recording, read_tsv

UNDER_CI = os.environ.get("CI", "").lower() == "true"
COMPILED = scoring.scorer if scoring.IMPLEMENTATION == "compiled" else None

needs_compiled = pytest.mark.skipif(
    COMPILED is None and not UNDER_CI,
    reason=f"no compiled scorer in use: {scoring.IMPLEMENTATION_NOTE}",
)


def _trials() -> list:
    files = sorted(f for f in DATA.glob("*.tsv") if f.name != "labels.tsv")
    return [(f.name, *events_from_recording(read_tsv(f))) for f in files]


def test_compiled_scorer_installed_under_ci():
    if not UNDER_CI:
        pytest.skip("checked only under CI=true (CI installs the compiled scorer)")
    assert scoring.IMPLEMENTATION == "compiled", scoring.IMPLEMENTATION_NOTE


@needs_compiled
def test_compiled_matches_pure_on_recorded_trials():
    assert COMPILED is not None, f"no compiled scorer: {scoring.IMPLEMENTATION_NOTE}"
    assert COMPILED.__file__ == scoring.compiled_path()
    pure = scoring.load_pure()
    assert pure.__file__.endswith("scorer.py")
    assert pure.EpisodeScorer is not COMPILED.EpisodeScorer
    trials = _trials()
    assert len(trials) == 50
    steps = flagged = 0
    for name, spec, events in trials:
        fast, slow = COMPILED.EpisodeScorer(spec), pure.EpisodeScorer(spec)
        for event in events:
            a, b = fast.update(event), slow.update(event)
            assert type(a) is StepScore and type(b) is StepScore
            assert repr(tuple(a)) == repr(tuple(b)), f"{name} step {event.step}"
            steps += 1
            flagged += bool(a.detections)
        assert repr(fast.to_state()) == repr(slow.to_state()), name
    assert steps > 4000 and flagged > 40  # the trials exercise the flags too


@needs_compiled
def test_checkpoint_moves_between_implementations():
    """A state saved by one implementation resumes identically in the other."""
    assert COMPILED is not None, f"no compiled scorer: {scoring.IMPLEMENTATION_NOTE}"
    pure = scoring.load_pure()
    for name, spec, events in _trials()[::7]:
        half = len(events) // 2
        fast, slow = COMPILED.EpisodeScorer(spec), pure.EpisodeScorer(spec)
        for event in events[:half]:
            fast.update(event)
            slow.update(event)
        fast2 = COMPILED.EpisodeScorer.from_state(spec, slow.to_state())
        slow2 = pure.EpisodeScorer.from_state(spec, fast.to_state())
        fast2.rearm()
        slow2.rearm()
        for event in events[half:]:
            a, b = fast2.update(event), slow2.update(event)
            assert repr(tuple(a)) == repr(tuple(b)), f"{name} step {event.step}"
