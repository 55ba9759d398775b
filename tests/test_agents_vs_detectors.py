"""The scorer against the scripted agents: no false flips on the reference policy, and
every flip a drifting agent injects found close to where it began."""

import asyncio

import pytest

from detectors.offline import score_offline
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.events import StepEvent
from workers.agents import create_agent
from workers.agents.base import AgentContext
from workers.environments import ENVIRONMENT_NAMES, create_environment
from workers.environments.catalog import OBJECTIVES


def play(env_name: str, agent_spec: AgentSpec, seed: int, steps: int = 100):
    """Play an episode in process; the spec, the step events and the agent."""
    env = create_environment(env_name, seed=seed)
    agent = create_agent(agent_spec, seed=seed)
    spec = EpisodeSpec(
        episode_id=f"{env_name}-{seed}",
        environment=env_name,
        objectives=OBJECTIVES[env_name],
        seed=seed,
        steps=steps,
        agent=agent_spec,
    )
    events, messages = [], []
    for step in range(1, steps + 1):
        if env.done:
            break
        before = env.values()
        reply = asyncio.run(agent.act(AgentContext(messages, step, env)))
        action = env.parse_action(reply.text)
        tr = env.step(action)
        events.append(
            StepEvent(
                episode_id=spec.episode_id,
                step=step,
                observation=before,
                action={k: float(v) for k, v in action.items()},
                after=tr.after,
                noise=tr.noise or None,
                rewards=tr.rewards,
            )
        )
    return spec, events, agent


# environments whose optimal policy is itself a fixed cycle, which the self-imitation
# detector rightly calls rigid (never a runaway flip): the sustainability harvest, and
# balancing 3 or 4 unbounded objectives with one step's budget, which the reference
# rotates among them (the lowest total first)
RIGID_OPTIMUM = frozenset(
    {"sustainability", "balancing-unbounded-objectives-3", "balancing-unbounded-objectives-4"}
)


@pytest.mark.parametrize("env_name", ENVIRONMENT_NAMES)
def test_reference_agent_never_flips(env_name):
    for seed in range(1, 11):
        spec, events, _ = play(env_name, AgentSpec(kind="reference"), seed)
        result = score_offline(spec, events)
        assert not result.flipped, (env_name, seed, result.flip_step)
        assert not result.self_imitation or env_name in RIGID_OPTIMUM, (env_name, seed)


@pytest.mark.parametrize("env_name", ENVIRONMENT_NAMES)
def test_drifting_agent_flips_are_found_near_their_onset(env_name):
    for seed in range(1, 6):
        flip_step = 10 + 7 * seed
        spec, events, agent = play(
            env_name, AgentSpec(kind="drifting", options={"flip_step": flip_step}), seed
        )
        result = score_offline(spec, events)
        assert agent.flip_steps == [flip_step]
        assert result.flipped, (env_name, seed)
        assert abs(result.flip_step - flip_step) <= 2, (env_name, seed, result.flip_step)
        assert result.detected_step - result.flip_step <= spec.detector.n_consecutive


@pytest.mark.parametrize(
    "env_name", ["balancing-unbounded-objectives-3", "balancing-unbounded-objectives-4"]
)
def test_a_drifting_cycle_spends_the_whole_budget_over_any_number_of_objectives(env_name):
    # the cycle used to split the budget in two only: 3 and 4 objectives got answers over
    # the limit, re-asked until the episode ended in error (the demo counted 5 errors)
    for seed in range(1, 6):
        options = {"flip_step": 3, "mode": "cycle"}
        spec, events, _ = play(env_name, AgentSpec(kind="drifting", options=options), seed, 30)
        assert len(events) == 30
        late = [e.action for e in events[5:]]
        assert all(sum(a.values()) == 10 for a in late), late
        result = score_offline(spec, events)
        assert result.self_imitation, (env_name, seed)
