"""Scripted agents: reference, drifting (flips and relapses) and replay."""

from pathlib import Path

import pytest

from schemas.episode import AgentSpec
from workers.agents import Agent, AgentContext, DriftingAgent, create_agent
from workers.agents.base import AgentFinished
from workers.environments import ENVIRONMENT_NAMES, create_environment
from workers.environments.base import Environment, Transition
from workers.recordings import BUNDLED_DIR as DATA
from workers.recordings import read_tsv


async def play(
    env: Environment, agent: Agent, steps: int, restored_at: tuple[int, ...] = ()
) -> list[Transition]:
    """A minimal episode loop: the agent answers, the environment parses and steps."""
    out = []
    for _ in range(steps):
        step = env.step_number
        context = AgentContext(
            messages=[{"role": "user", "content": env.observation_text()}],
            step=step,
            env=env,
            restored=step in restored_at,
        )
        reply = await agent.act(context)
        out.append(env.step(env.parse_action(reply.text)))
    await agent.aclose()
    return out


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
async def test_reference_agent_plays_the_reference_policy(name: str) -> None:
    env, twin = create_environment(name, seed=4), create_environment(name, seed=4)
    agent = create_agent(AgentSpec(kind="reference"), seed=1)
    for t in await play(env, agent, 50):
        assert t.action == twin.reference_action()
        assert twin.step(twin.reference_action()) == t


def test_create_agent_errors() -> None:
    with pytest.raises(ValueError, match="unknown agent kind 'gpt'"):
        create_agent(AgentSpec(kind="gpt"), seed=1)
    with pytest.raises(ValueError, match="unknown option"):
        create_agent(AgentSpec(kind="drifting", options={"flip_at": 3}), seed=1)
    with pytest.raises(ValueError, match="unknown option"):
        create_agent(AgentSpec(kind="reference", options={"x": 1}), seed=1)
    with pytest.raises(ValueError, match="unknown drifting mode"):
        create_agent(AgentSpec(kind="drifting", options={"mode": "chaos"}), seed=1)
    with pytest.raises(ValueError, match="recording"):
        create_agent(AgentSpec(kind="replay"), seed=1)


def test_default_flip_step_is_seeded_in_range() -> None:
    steps = [DriftingAgent(seed=s).flip_step for s in range(200)]
    assert all(15 <= s <= 60 for s in steps)
    assert len(set(steps)) > 20
    assert DriftingAgent(seed=5).flip_step == DriftingAgent(seed=5).flip_step


async def test_drifting_unbounded_max_in_multiobjective_homeostasis() -> None:
    env = create_environment("multiobjective-homeostasis", seed=1)
    ref = create_environment("multiobjective-homeostasis", seed=1)
    agent = create_agent(AgentSpec(kind="drifting", options={"flip_step": 10}), seed=3)
    run = await play(env, agent, 30)
    for t in run[:9]:
        assert t.action == ref.reference_action()
        ref.step(t.action)
    assert agent.flip_steps == [10]
    grown = [t.action["B"] for t in run[9:]]
    assert grown == [15 + 5 * k for k in range(21)]
    assert run[-1].after["B"] > 120 + 12 + 200  # far above the band: unbounded maximisation
    assert all(abs(t.after["A"] - 110) <= 11 for t in run[9:])  # A stays on reference


async def test_drifting_single_objective_in_balancing() -> None:
    env = create_environment("balancing-unbounded-objectives")
    agent = create_agent(AgentSpec(kind="drifting", options={"flip_step": 5}), seed=1)
    run = await play(env, agent, 20)
    assert [t.action for t in run[4:]] == [{"A": 0, "B": 10}] * 16
    assert run[-1].after["B"] - run[-1].after["A"] == 160


async def test_drifting_over_harvest_collapses_the_stock() -> None:
    env = create_environment("sustainability")
    agent = create_agent(AgentSpec(kind="drifting", options={"flip_step": 8}), seed=1)
    run = await play(env, agent, 30)
    assert run[6].observation["stock"] >= 14
    assert max(t.after["stock"] for t in run[12:]) < 5
    assert not env.done  # it leaves one potato, so the episode goes on


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
async def test_drifting_cycle_is_rigid(name: str) -> None:
    env = create_environment(name, seed=2)
    options = {"flip_step": 3, "mode": "cycle"}
    agent = create_agent(AgentSpec(kind="drifting", options=options), seed=9)
    actions = [t.action for t in await play(env, agent, 40)][2:]
    if name == "sustainability":
        assert all(1 <= a["stock"] <= 6 for a in actions)
        assert not env.done
    period = next(p for p in (2, 3) if all(a == actions[i % p] for i, a in enumerate(actions)))
    assert len({tuple(a.values()) for a in actions[:period]}) == period


async def test_drifting_mode_must_fit_the_environment() -> None:
    env = create_environment("homeostasis")
    agent = create_agent(AgentSpec(kind="drifting", options={"mode": "over_harvest"}), seed=1)
    with pytest.raises(ValueError, match="does not fit"):
        await play(env, agent, 1)


async def test_drifting_relapses_after_a_restore() -> None:
    env = create_environment("multiobjective-homeostasis", seed=3)
    options = {"flip_step": 5, "relapse_after": 4}
    agent = create_agent(AgentSpec(kind="drifting", options=options), seed=1)
    run = await play(env, agent, 20, restored_at=(9,))
    assert agent.flip_steps == [5, 13]
    b = [t.action["B"] for t in run]
    assert b[4:8] == [15, 20, 25, 30]  # steps 5..8: flipped
    assert all(x <= 15 for x in b[8:12])  # steps 9..12: reference again (B far above: 0)
    assert b[8:12] == [0, 0, 0, 0]
    assert b[12:15] == [15, 20, 25]  # step 13: flips again, growth restarts


async def test_restore_before_the_flip_changes_nothing() -> None:
    env = create_environment("balancing-unbounded-objectives")
    agent = create_agent(AgentSpec(kind="drifting", options={"flip_step": 6}), seed=1)
    run = await play(env, agent, 8, restored_at=(3,))
    assert agent.flip_steps == [6]
    assert run[5].action == {"A": 0, "B": 10}


async def test_restore_during_relapse_restarts_it() -> None:
    env = create_environment("balancing-unbounded-objectives")
    options = {"flip_step": 2, "relapse_after": 3}
    agent = create_agent(AgentSpec(kind="drifting", options=options), seed=1)
    await play(env, agent, 12, restored_at=(4, 6))
    assert agent.flip_steps == [2, 9]


@pytest.mark.parametrize(
    "path",
    [next(DATA.glob(f"{b}_gpt-4o-mini_*.tsv")) for b in ("homeostasis", "balancing-*-no-hint")],
    ids=["homeostasis", "balancing-no-hint"],
)
async def test_replay_agent_reproduces_the_recording(path: Path) -> None:
    rec = read_tsv(path)
    env = create_environment(
        rec.environment, seed=rec.trial, noise_trace=rec.noise_trace(), **rec.env_options
    )
    agent = create_agent(AgentSpec(kind="replay"), seed=1, recording=rec)
    run = await play(env, agent, len(rec.steps))
    assert [t.action for t in run] == [s.action for s in rec.steps]
    assert [t.after for t in run] == [s.after for s in rec.steps]
    with pytest.raises(AgentFinished):
        await agent.act(AgentContext(messages=[], step=101, env=env))


async def test_replay_agent_uses_the_verbatim_response() -> None:
    rec = read_tsv(next(DATA.glob("multiobjective-homeostasis_gpt-4o-mini_*.tsv")))
    agent = create_agent(AgentSpec(kind="replay", options={"source": rec.source}), seed=1)
    env = create_environment(rec.environment, seed=rec.trial)
    reply = await agent.act(AgentContext(messages=[], step=2, env=env))
    assert reply.text == rec.steps[1].response


def test_replay_recordings_are_parsed_once_per_file_version(tmp_path):
    from workers.recordings import read_tsv_shared

    source = tmp_path / "trial.tsv"
    source.write_bytes(sorted(DATA.glob("*.tsv"))[0].read_bytes())
    first = read_tsv_shared(source)
    assert read_tsv_shared(str(source)) is first  # shared by every episode replaying it
    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join(lines[:-1]))  # the file changes: it is read again
    again = read_tsv_shared(source)
    assert again is not first and len(again.steps) == len(first.steps) - 1
