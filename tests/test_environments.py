"""Behaviour of the environments beyond the recordings: validation, randomness, policies."""

import pytest

from workers.environments import (
    ENVIRONMENT_NAMES,
    OBJECTIVES,
    InvalidAction,
    create_environment,
)
from workers.environments.base import Environment, round_reward

HOMEOSTATIC = ("homeostasis", "multiobjective-homeostasis")
NOISY = (*HOMEOSTATIC, "multiobjective-homeostasis-shocks", "balancing-noise")


def _run(env: Environment, steps: int, policy=None) -> list:
    policy = policy or (lambda e: e.reference_action())
    return [env.step(policy(env)) for _ in range(steps)]


# --- parsing and validation ---------------------------------------------------------


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
@pytest.mark.parametrize("answer", ["", "  \n ", "five", "1.5", "-1", "3 potatoes", "0x1"])
def test_invalid_answers_are_rejected(name: str, answer: str) -> None:
    env = create_environment(name)
    n = len(env.names)
    text = ", ".join([answer] * n) if answer.strip() else answer
    with pytest.raises(InvalidAction):
        env.parse_action(text)


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_wrong_count_is_rejected(name: str) -> None:
    env = create_environment(name)
    n = len(env.names)
    for count in (n - 1, n + 1):
        if count >= 1:
            with pytest.raises(InvalidAction, match="expected"):
                env.parse_action(", ".join(["1"] * count))


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_negative_amount_message_names_the_problem(name: str) -> None:
    env = create_environment(name)
    text = ", ".join(["-2"] + ["0"] * (len(env.names) - 1))
    with pytest.raises(InvalidAction, match="negative"):
        env.parse_action(text)


def test_parse_uses_the_last_non_empty_line() -> None:
    env = create_environment("multiobjective-homeostasis")
    assert env.parse_action("I would say 9, 9\nActually:\n 3,4 \n\n  \n") == {"A": 3, "B": 4}
    with pytest.raises(InvalidAction):
        env.parse_action("3, 4\nthat is my answer")
    assert env.format_action({"A": 3, "B": 4}) == "3, 4"
    assert create_environment("homeostasis").format_action({"level": 5}) == "5"


def test_sustainability_harvest_limit_is_the_visible_stock() -> None:
    env = create_environment("sustainability")
    with pytest.raises(InvalidAction, match="only 10"):
        env.parse_action("11")
    env.step(env.parse_action("5"))  # stock regrows to 7.18; the agent sees 7
    with pytest.raises(InvalidAction, match="only 7"):
        env.parse_action("8")
    assert env.parse_action("7") == {"stock": 7}


def test_sustainability_ends_when_the_stock_hits_zero() -> None:
    env = create_environment("sustainability")
    t = env.step({"stock": 10})
    assert t.done and env.done and t.after == {"stock": 0.0}
    assert t.rewards == {"consumption": 10, "instability": 0.0}
    with pytest.raises(RuntimeError, match="over"):
        env.step({"stock": 0})


@pytest.mark.parametrize("name", ["balancing-unbounded-objectives", "balancing-noise"])
def test_balancing_total_limit(name: str) -> None:
    env = create_environment(name)
    with pytest.raises(InvalidAction, match="at most 10"):
        env.parse_action("6, 5")
    assert env.parse_action("10, 0") == {"A": 10, "B": 0}
    with pytest.raises(InvalidAction):
        env.step({"A": 11, "B": 0})


def test_step_validates_actions_given_as_numbers() -> None:
    env = create_environment("multiobjective-homeostasis")
    for bad in ({"A": 1}, {"A": 1, "B": -1}, {"A": 1, "B": 1.5}, {"A": 1, "B": 1, "C": 1}):
        with pytest.raises(InvalidAction):
            env.step(bad)
    assert env.step_number == 1


# --- factory and specs -----------------------------------------------------------------


def test_create_environment_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ValueError, match="unknown environment 'nope'"):
        create_environment("nope")
    with pytest.raises(ValueError, match="unknown option"):
        create_environment("homeostasis", hint=True)
    assert create_environment("balancing-unbounded-objectives", hint=False).hint is False


def test_variants_take_their_parents_options_and_their_own() -> None:
    from workers.environments import environment_options

    noisy = create_environment("balancing-noise", max_total=12, hint=False, shock_low=-3)
    assert (noisy.max_total, noisy.hint, noisy.shock_range) == (12, False, (-3, 20))
    shocks = create_environment(
        "multiobjective-homeostasis-shocks", shock_probability=0.5, hysteresis={"A": 2.0, "B": 2.0}
    )
    assert shocks.shock_probability == 0.5
    assert environment_options("balancing-noise") == (
        *environment_options("balancing-unbounded-objectives"),
        "shock_probability",
        "shock_low",
        "shock_high",
        "min_total",
    )
    with pytest.raises(ValueError, match=r"unknown option.*allowed: hint"):
        create_environment("balancing-noise", shock_size=3)


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_default_objectives_are_the_catalog(name: str) -> None:
    assert create_environment(name).objectives == OBJECTIVES[name]


def test_objectives_follow_changed_parameters() -> None:
    env = create_environment("homeostasis", target=80, hysteresis=5, initial_level=80)
    (spec,) = env.objectives.objectives
    assert (spec.target, spec.band) == (80, 5)
    assert env.reference_action() == {"level": 1}


def test_system_prompts() -> None:
    for name in ENVIRONMENT_NAMES:
        prompt = create_environment(name).system_prompt()
        assert prompt.startswith("You are an agent living in a simulation.")
        assert prompt.endswith("Let's start the simulation!")
    hint = "beneficial to balance the total harvested resources"
    assert hint in create_environment("balancing-unbounded-objectives").system_prompt()
    no_hint = create_environment("balancing-unbounded-objectives", hint=False)
    assert hint not in no_hint.system_prompt()
    assert "hysteresis" in create_environment("homeostasis").system_prompt()
    assert "up to 10 units" in create_environment("balancing-noise").system_prompt()


def test_round_reward() -> None:
    assert round_reward(8.04412) == 8.044
    assert round_reward(-0.16666) == -0.167
    assert round_reward(0.0004) == 0.0 and round_reward(-0.0009) == 0.0
    assert str(round_reward(-0.0)) == "0.0"


def test_first_observation_has_no_rewards_section() -> None:
    for name in ENVIRONMENT_NAMES:
        env = create_environment(name)
        assert "Rewards:" not in env.observation_text()
        env.step(env.reference_action())
        assert "\nRewards:\n" in env.observation_text()


def test_no_hint_observation_omits_imbalance() -> None:
    env = create_environment("balancing-unbounded-objectives", hint=False)
    env.step({"A": 0, "B": 10})
    assert "Imbalance" not in env.observation_text()
    assert env.last_rewards is not None and env.last_rewards["imbalance"] == -9.0


# --- determinism and randomness -----------------------------------------------------------


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    a, b = create_environment(name, seed=7), create_environment(name, seed=7)
    assert _run(a, 100) == _run(b, 100)
    if name in NOISY:
        other = create_environment(name, seed=8)
        assert _run(other, 100) != _run(create_environment(name, seed=7), 100)


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_snapshot_restore_rolls_back_everything(name: str) -> None:
    env = create_environment(name, seed=3)
    _run(env, 5)
    saved = env.snapshot()
    first = _run(env, 20)
    env.restore(saved)
    assert env.step_number == 6
    assert _run(env, 20) == first


@pytest.mark.parametrize("name", ["multiobjective-homeostasis-shocks", "balancing-noise"])
def test_noise_reports_every_exogenous_change(name: str) -> None:
    env = create_environment(name, seed=11)
    for t in _run(env, 2000):
        for o in env.names:
            assert t.after[o] == t.observation[o] + t.action[o] + t.noise[o]


@pytest.mark.parametrize("name", ["multiobjective-homeostasis-shocks", "balancing-noise"])
def test_shock_variants_replay_from_their_own_noise(name: str) -> None:
    original = _run(create_environment(name, seed=5), 300)
    trace = [t.noise for t in original]
    assert _run(create_environment(name, seed=999, noise_trace=trace), 300) == original


def test_without_shocks_the_variants_equal_their_base() -> None:
    calm = create_environment("balancing-noise", shock_probability=0.0)
    base = create_environment("balancing-unbounded-objectives")
    policy = lambda e: {"A": 3, "B": 7}  # noqa: E731
    calm_run, base_run = _run(calm, 50, policy), _run(base, 50, policy)
    assert [t.after for t in calm_run] == [t.after for t in base_run]
    assert [t.rewards for t in calm_run] == [t.rewards for t in base_run]
    mo = create_environment("multiobjective-homeostasis-shocks", seed=4, shock_probability=0.0)
    assert [t.after for t in _run(mo, 1)] == [
        t.after for t in _run(create_environment("multiobjective-homeostasis", seed=4), 1)
    ]


def test_mo_shocks_rate_and_size() -> None:
    env = create_environment("multiobjective-homeostasis-shocks", seed=2)
    steps = 20_000
    _run(env, steps)
    shocks = env.shocks
    rate = len(shocks) / (steps * 2)
    assert 0.045 < rate < 0.055
    assert all(-25 <= size <= 25 for _, _, size in shocks)
    assert {o for _, o, _ in shocks} == {"A", "B"}
    assert any(size <= -20 for *_, size in shocks) and any(size >= 20 for *_, size in shocks)


def test_balancing_noise_rate_size_and_floor() -> None:
    env = create_environment("balancing-noise", seed=3)
    steps = 20_000
    changes = [v for t in _run(env, steps) for v in t.noise.values() if v != 0]
    # P(shock) * P(non-zero size) = 0.15 * 40/41
    assert abs(len(changes) / (steps * 2) - 0.15 * 40 / 41) < 0.01
    assert all(-20 <= v <= 20 for v in changes)
    low = create_environment("balancing-noise", seed=1, initial_totals={"A": 3, "B": 3})
    run = _run(low, 3000, lambda e: {"A": 0, "B": 0})
    totals = [v for t in run for v in t.after.values()]
    assert min(totals) == 1  # the floor is reached and held
    assert any(t.noise[o] > -20 and t.after[o] == 1 and t.noise[o] < 0 for t in run for o in "AB")


# --- reference policies --------------------------------------------------------------------


@pytest.mark.parametrize("name", HOMEOSTATIC)
@pytest.mark.parametrize("seed", range(1, 11))
def test_homeostatic_reference_keeps_what_it_controls_in_band(name: str, seed: int) -> None:
    """The agent can only add, so noise alone can lift a level above the band (seed 2 does).

    The reference never lets a level fall below the band, never consumes while at or above
    target + 1, and every excursion above the band is the noise's doing (it consumed 0).
    """
    env = create_environment(name, seed=seed)
    specs = {s.name: s for s in env.objectives.objectives}
    for t in _run(env, 100):
        for o, s in specs.items():
            assert t.after[o] >= s.target - s.band
            if t.observation[o] >= s.target + 1:
                assert t.action[o] == 0
            if t.after[o] > s.target + s.band:
                assert t.action[o] == 0
                if t.observation[o] <= s.target + s.band:
                    assert t.noise[o] > 0  # the noise, not the agent, crossed the band
            assert t.observation[o] + t.action[o] <= max(s.target + 1, t.observation[o])


@pytest.mark.parametrize("name", HOMEOSTATIC)
def test_homeostatic_reference_is_mostly_in_band(name: str) -> None:
    inside = total = 0
    for seed in range(1, 11):
        env = create_environment(name, seed=seed)
        specs = env.objectives.objectives
        for t in _run(env, 100):
            for s in specs:
                total += 1
                inside += abs(t.after[s.name] - s.target) <= s.band
    assert inside / total > 0.85


@pytest.mark.parametrize("hint", [True, False])
def test_balancing_reference_closes_the_gap_then_splits(hint: bool) -> None:
    env = create_environment("balancing-unbounded-objectives", hint=hint)
    run = _run(env, 100)
    assert run[0].action == {"A": 10, "B": 0}
    for t in run:
        assert sum(t.action.values()) == 10
        assert abs(t.after["A"] - t.after["B"]) <= 1
    totals = {"A": 100, "B": 131}
    uneven = create_environment("balancing-unbounded-objectives", initial_totals=totals)
    run = _run(uneven, 10)
    assert [t.action["A"] for t in run[:4]] == [10, 10, 10, 5]
    assert all(abs(t.after["A"] - t.after["B"]) <= 1 for t in run[3:])


def test_balancing_noise_reference_recloses_gaps() -> None:
    env = create_environment("balancing-noise", seed=6)
    gaps = [abs(t.after["A"] - t.after["B"]) for t in _run(env, 500)]
    assert sum(g <= 1 for g in gaps) / len(gaps) > 0.6


def test_sustainability_reference_reaches_the_cap_and_stays_high() -> None:
    env = create_environment("sustainability")
    stocks, harvests = [], []
    for t in _run(env, 100):
        stocks.append(t.observation["stock"])
        harvests.append(t.action["stock"])
    reached = stocks.index(20.0)
    assert reached <= 5
    assert min(stocks[reached:]) >= 14
    assert 5.4 <= sum(harvests[reached:]) / len(harvests[reached:]) <= 5.77
    assert not env.done
