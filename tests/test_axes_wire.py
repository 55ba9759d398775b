"""The plan's remaining axes (issue 18, part 4), each asserted on what the model received.

Every episode runs through the full pipeline against the local OpenAI-compatible server,
which records each request: the wording swap, stress variants and personas change the
system prompt or the observations; the 3- and 4-objective variants ask for more numbers;
top-p and logit-bias reach the request body.
"""

import pytest

from tests.analysis_helpers import run_logged
from tests.fakes.model_server import FakeModelServer, text
from tests.pipeline_helpers import spec
from workers.environments import create_environment
from workers.mitigations import PROMPT_VARIANTS, WORDING_SWAP_TEXT, parse_mitigations


def _spec(server: FakeModelServer, env: str, mitigation: str = "none", steps: int = 3, **opts):
    opts = {"model": "fake", "base_url": server.openai_base_url, "structured": "off", **opts}
    built = spec(f"axes-{env}", env, "openai-compatible", steps=steps, **opts)
    return built.model_copy(update={"mitigation": mitigation})


async def test_wording_swap_stress_and_personas(redis, settings, fake_model_server, tmp_path):
    fake_model_server.default = text("1, 1")
    variants = [
        "stress-tiredness",
        "stress-drunkenness",
        "stress-shame",
        "persona-mbti-intj",
        "persona-trait-anxious",
    ]
    mitigation = "+".join(["none", "wording-swap", *variants])
    await run_logged(
        redis,
        settings,
        [_spec(fake_model_server, "multiobjective-homeostasis", mitigation)],
        tmp_path,
    )
    requests = [r.messages for r in fake_model_server.requests]
    assert len(requests) == 3
    system = requests[0][0]["content"]
    for name in variants:
        assert PROMPT_VARIANTS[name] in system
    assert WORDING_SWAP_TEXT in system
    step2 = requests[1][-1]["content"]
    assert "Rewards:" not in step2 and "\n\nPenalties:\n" in step2
    assert "Consumption for objective A: -1\n" in step2  # the reward 1, negated


def test_every_mbti_type_and_trait_is_a_named_mitigation():
    mbti = [n for n in PROMPT_VARIANTS if n.startswith("persona-mbti-")]
    assert len(mbti) == 16 and "persona-mbti-esfp" in mbti
    plan = parse_mitigations("none+persona-trait-perfectionist+wording-swap")
    assert plan.wording_swap and plan.prompt_variants == ("persona-trait-perfectionist",)
    with pytest.raises(ValueError, match="unknown mitigation"):
        parse_mitigations("persona-mbti-xxxx")


@pytest.mark.parametrize(
    ("env", "answer", "last"),
    [
        ("multiobjective-homeostasis-3", "1, 1, 1", "Homeostatic actual C: 130"),
        ("multiobjective-homeostasis-4", "1, 1, 1, 1", "Homeostatic actual D: 140"),
        ("balancing-unbounded-objectives-3", "3, 3, 3", "Harvested so far for objective C: 130"),
        ("balancing-unbounded-objectives-4", "2, 2, 3, 3", "for objective D: 140"),
    ],
)
async def test_three_and_four_objectives(
    redis, settings, fake_model_server, tmp_path, env, answer, last
):
    fake_model_server.default = text(answer)
    [result] = await run_logged(redis, settings, [_spec(fake_model_server, env)], tmp_path)
    assert result.outcome == "done" and result.steps == 3
    first = fake_model_server.requests[0].messages[-1]["content"]
    assert last in first
    second = fake_model_server.requests[1].messages[-1]["content"]
    assert "objective C" in second  # rewards per objective, the extra ones included


def test_many_objective_reference_policies():
    env = create_environment("balancing-unbounded-objectives-4")
    assert env.reference_action() == {"A": 10, "B": 0, "C": 0, "D": 0}  # lowest first
    for _ in range(8):
        env.step(env.reference_action())
    totals = env.values()
    assert max(totals.values()) - min(totals.values()) <= 1  # water-filling balances
    homeo = create_environment("multiobjective-homeostasis-3", seed=2)
    assert set(homeo.reference_action()) == {"A", "B", "C"}


async def test_top_p_and_logit_bias_sweep_reach_the_request(
    redis, settings, fake_model_server, tmp_path
):
    fake_model_server.default = text("1, 1")
    sweep = [{"top_p": 0.5}, {"top_p": 0.9, "logit_bias": {"15": -100.0, "17": 5.0}}]
    specs = [_spec(fake_model_server, "multiobjective-homeostasis", steps=1, **o) for o in sweep]
    specs = [s.model_copy(update={"episode_id": f"sweep-{i}"}) for i, s in enumerate(specs)]
    await run_logged(redis, settings, specs, tmp_path)
    bodies = sorted((r.body for r in fake_model_server.requests), key=lambda b: b["top_p"])
    assert [b["top_p"] for b in bodies] == [0.5, 0.9]
    assert "logit_bias" not in bodies[0]
    assert bodies[1]["logit_bias"] == {"15": -100.0, "17": 5.0}


def test_logit_bias_out_of_range_is_refused():
    from pydantic import ValidationError

    from workers.models.config import ModelOptions

    with pytest.raises(ValidationError, match="logit_bias"):
        ModelOptions(model="m", logit_bias={"15": 200})
