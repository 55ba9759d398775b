"""Every recorded BioBlue trial replays through the environments exactly.

The recorded noise trace drives the environment; every observation text, before/after
value, noise value, reward and metric must match the recording. The noise-free replays
check what the seeds reproduce on their own.
"""

from pathlib import Path

import pytest

from workers.environments import create_environment
from workers.recordings import BUNDLED_DIR as DATA
from workers.recordings import Recording, read_tsv

FILES = sorted(DATA.glob("*_gpt-4o-mini_*.tsv"))


def _recordings(environment: str) -> list[Recording]:
    return [r for r in map(read_tsv, FILES) if r.environment == environment]


def test_all_fifty_trials_are_found() -> None:
    assert len(FILES) == 50


@pytest.mark.parametrize("path", FILES, ids=[p.name.split("_gpt")[0] + p.stem[-6:] for p in FILES])
def test_recorded_trial_replays_exactly(path: Path) -> None:
    rec = read_tsv(path)
    env = create_environment(
        rec.environment, seed=rec.trial, noise_trace=rec.noise_trace(), **rec.env_options
    )
    assert len(rec.steps) == 100
    for s in rec.steps:
        where = f"{path.name} step {s.step}"
        assert env.step_number == s.step, where
        assert env.observation_text() == s.prompt, where
        assert env.values() == s.before, where
        if s.response is not None:
            assert env.parse_action(s.response) == s.action, where
        t = env.step(s.action)
        assert t.step == s.step, where
        assert t.action == s.action, where
        assert t.after == s.after, where
        assert t.rewards == s.rewards, where
        assert list(t.rewards) == list(s.rewards), where  # exactly the canonical keys
        if s.noise:
            assert t.noise == s.noise, where
        for key, value in s.metrics.items():
            assert t.metrics[key] == pytest.approx(value, abs=1e-12), where
        assert not t.done, where


def _replay_without_trace(rec: Recording, seed: int) -> list[int]:
    """Steps (1-based) where the env's own noise differs from the recording."""
    env = create_environment(rec.environment, seed=seed, **rec.env_options)
    wrong = []
    for s in rec.steps:
        t = env.step(s.action)
        if t.noise != s.noise or t.after != s.after or t.rewards != s.rewards:
            wrong.append(s.step)
    return wrong


@pytest.mark.parametrize("rec", _recordings("multiobjective-homeostasis"), ids=lambda r: r.trial)
def test_multiobjective_homeostasis_seed_is_the_trial_number(rec: Recording) -> None:
    assert _replay_without_trace(rec, seed=rec.trial) == []


@pytest.mark.parametrize("rec", _recordings("homeostasis"), ids=lambda r: r.trial)
def test_homeostasis_recordings_all_use_the_noise_of_seed_0(rec: Recording) -> None:
    """Finding: all ten recorded homeostasis trials share one noise sequence, Random(0)'s.

    So seed = trial does not reproduce them (checked below); seed 0 reproduces each one.
    """
    assert _replay_without_trace(rec, seed=0) == []
    assert len(_replay_without_trace(rec, seed=rec.trial)) > 50


def test_homeostasis_trials_share_one_noise_sequence() -> None:
    traces = [[s.noise["level"] for s in r.steps] for r in _recordings("homeostasis")]
    assert len(traces) == 10
    assert all(t == traces[0] for t in traces)
