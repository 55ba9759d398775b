"""The verdict policy per flag: decisions and fallbacks (pure), its configuration and
validation (settings, experiment YAML, ``run --policy``), and the worker applying a
``remind`` exactly once per command."""

import argparse

import pytest
from pydantic import ValidationError

from detectors.policy import decide
from detectors.scoring import Detection, StepScore
from monitor.commands import run as run_cmd
from monitor.experiments.config import ExperimentConfig
from monitor.experiments.grid import build_grid
from schemas.episode import AgentSpec, DetectorConfig, EpisodeSpec, VerdictPolicy
from schemas.events import RecoveryCommand
from schemas.objectives import ObjectiveKind, ObjectiveSet, ObjectiveSpec
from schemas.settings import Settings
from tests.mitigation_helpers import run_episode

OBJ = ObjectiveSet(objectives=(ObjectiveSpec(name="A", kind=ObjectiveKind.UNBOUNDED),))


def spec(policy: VerdictPolicy | None = None, worker: bool = False, **detector) -> EpisodeSpec:
    return EpisodeSpec(
        episode_id="p",
        objectives=OBJ,
        policy=policy or VerdictPolicy(),
        agent=AgentSpec(kind="reference") if worker else None,
        detector=DetectorConfig(**detector),
    )


def score(step: int, *flags: str, onset: int = 3, savepoint: int = 2, loop: int = 0):
    dets = tuple(Detection(f, onset, step, "mode", "A") for f in flags)  # type: ignore[arg-type]
    return StepScore(step, 0.5, 0.1, (0.0,) * 10, frozenset(flags), dets, False, savepoint, loop)


def test_defaults_per_flag():
    assert VerdictPolicy().model_dump() == {
        "runaway": "reset",
        "self_imitation": "remind",
        "over_exploitation": "remind",
        "loop": "block",
    }
    for flag, verdict in (
        ("runaway", "reset"),
        ("self_imitation", "remind"),
        ("over_exploitation", "remind"),
    ):
        d = decide(score(8, flag), spec(), first_safe=1)
        assert (d.verdict, d.cause, d.policy, d.onset_step) == (verdict, flag, verdict, 3)
        assert flag in d.reason
    assert decide(score(8), spec(), first_safe=1).verdict == "continue"


def test_reset_without_a_safe_savepoint_falls_back_to_remind():
    d = decide(score(5, "runaway", onset=1, savepoint=0), spec(), first_safe=None)
    assert (d.verdict, d.cause, d.policy) == ("remind", "runaway", "reset")
    assert "no safe savepoint" in d.reason
    # safe steps only after the savepoint do not make it safe either
    d = decide(score(9, "runaway", onset=5, savepoint=4), spec(), first_safe=6)
    assert d.verdict == "remind"
    assert (
        decide(score(9, "runaway", onset=5, savepoint=4), spec(), first_safe=4).verdict == "reset"
    )


def test_the_strongest_action_wins_and_continue_is_silent():
    d = decide(score(8, "self_imitation", "runaway"), spec(), first_safe=1)
    assert (d.verdict, d.cause) == ("reset", "runaway")
    quiet = spec(VerdictPolicy(runaway="continue", self_imitation="continue"))
    assert decide(score(8, "self_imitation", "runaway"), quiet, first_safe=1).verdict == "continue"
    off = decide(score(8, "runaway"), spec(recover=False), first_safe=1)
    assert off.verdict == "continue" and "recovery is off" in off.reason


def test_loops_block_each_repeat_then_stop_for_sidecar_agents():
    s = spec()
    noted = decide(score(2, loop=1), s, None, "search called 2 times in a row")
    assert noted.verdict == "continue" and "loop suspected" in noted.reason
    first = decide(score(3, "loop", loop=2), s, None, "search called 3 times in a row")
    again = decide(score(4, loop=2), s, None, "search called 4 times in a row")
    last = decide(score(6, loop=3), s, None, "search called 6 times in a row")
    assert [x.verdict for x in (first, again, last)] == ["block", "block", "stop"]
    assert all(x.cause == "loop" for x in (first, again, last))
    assert "search called 6 times" in last.reason
    remind = spec(VerdictPolicy(loop="remind"))
    assert decide(score(3, "loop", loop=2), remind, None, "x").verdict == "remind"
    assert decide(score(4, loop=2), remind, None, "x").verdict == "continue"  # once per loop


def test_block_and_stop_never_reach_a_workers_built_in_agent():
    d = decide(score(3, "loop", loop=3), spec(worker=True), 1, "a text chunk repeated")
    assert (d.verdict, d.policy) == ("remind", "stop")
    assert "built-in agent" in d.reason
    with pytest.raises(ValueError, match=r"policy\.runaway: 'block' is for tool-using agents"):
        VerdictPolicy(runaway="block").check_worker()
    VerdictPolicy().check_worker()  # the default loop=block is for tool calls: allowed


def test_policy_validation_names_the_field():
    with pytest.raises(ValidationError, match="runaway"):
        VerdictPolicy(runaway="explode")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="extra"):
        VerdictPolicy.model_validate({"runaways": "reset"})
    p = VerdictPolicy(self_imitation="continue").with_overrides("runaway=remind, loop=stop")
    assert (p.runaway, p.self_imitation, p.loop) == ("remind", "continue", "stop")
    with pytest.raises(ValueError, match="'flip' is not a flag"):
        VerdictPolicy().with_overrides("flip=reset")
    with pytest.raises(ValueError, match="runaway: 'nuke' is not one of"):
        VerdictPolicy().with_overrides("runaway=nuke")


def test_worker_default_in_the_settings(monkeypatch):
    monkeypatch.setenv("RUNAWAY_WORKER_POLICY", '{"over_exploitation": "reset"}')
    assert Settings().worker_policy.over_exploitation == "reset"
    monkeypatch.setenv("RUNAWAY_WORKER_POLICY", '{"runaway": "stop"}')
    with pytest.raises(ValidationError, match=r"RUNAWAY_WORKER_POLICY\.runaway"):
        Settings()


def _config(**extra) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "name": "p",
            "models": [{"kind": "reference"}],
            "environments": ["sustainability"],
            "seeds": [1],
            "steps": 5,
            **extra,
        }
    )


def test_experiment_yaml_policy_and_the_settings_default():
    grid = build_grid(_config(policy={"self_imitation": "continue"}))
    assert grid[0][1].policy.self_imitation == "continue"
    default = VerdictPolicy(over_exploitation="reset")
    assert build_grid(_config(), default)[0][1].policy.over_exploitation == "reset"
    assert build_grid(_config(policy={"runaway": "remind"}), default)[0][1].policy == VerdictPolicy(
        runaway="remind"
    )
    with pytest.raises(ValidationError, match="block"):
        _config(policy={"loop": "block"})  # explicitly set for built-in agents: refused


def _run_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    run_cmd.register(p.add_subparsers())
    return p.parse_args(["run", "--env", "sustainability", "--agent", "reference", *argv])


def test_run_policy_flag(capsys):
    specs = run_cmd.build_specs(
        _run_args("--policy", "self_imitation=continue"), "r", VerdictPolicy(runaway="remind")
    )
    assert (specs[0].policy.runaway, specs[0].policy.self_imitation) == ("remind", "continue")
    assert run_cmd.main(_run_args("--policy", "runaway=block")) == 2
    assert "for tool-using agents" in capsys.readouterr().err
    assert run_cmd.main(_run_args("--policy", "runaway")) == 2
    assert "is not a flag" in capsys.readouterr().err


def remind(step: int, command_id: str) -> RecoveryCommand:
    return RecoveryCommand(
        episode_id="m",
        step=step,
        command_id=command_id,
        action="remind",
        cause="self_imitation",
        savepoint_step=step,
        reminder="REMEMBER",
        step_ts=0.0,
    )


async def test_worker_applies_remind_once_per_command_and_keeps_the_context(redis, settings):
    cmd = remind(6, "m:3:1")
    result, agent = await run_episode(
        redis, settings, "savepoint-recovery", control=[(6, [cmd, cmd]), (7, [cmd])]
    )
    assert result.reminders == 1 and result.recoveries == 0
    assert result.reminder_steps == [6]
    _, messages, restored = next(x for x in agent.seen if x[0] == 7)
    assert not restored
    assert len(messages) == 1 + 2 * 6 + 1  # nothing dropped
    assert messages[-1]["content"].startswith("REMEMBER\n\n")
    later = [m for s, m, _ in agent.seen if s > 7]
    assert all("REMEMBER" not in m[-1]["content"] for m in later)


async def test_no_mitigation_ignores_remind_too(redis, settings):
    result, _ = await run_episode(redis, settings, "none", control=[(6, [remind(6, "x")])])
    assert result.reminders == 0 and result.recoveries_ignored == 1
