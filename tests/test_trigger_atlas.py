"""The message classifier and the trigger atlas (pure functions)."""

from monitor.analysis.atlas import aggregate_atlas, render_atlas_markdown
from monitor.analysis.rebuild import MessageRef, StepFacts
from monitor.analysis.triggers import KINDS, classify
from workers.environments.catalog import OBJECTIVES

MOH = OBJECTIVES["multiobjective-homeostasis"]


def facts(observation=None, rewards=None, action=None, previous=None, reference=None):
    return StepFacts(
        step=5,
        observation=observation or {"A": 110, "B": 120},
        shown_rewards=rewards or {},
        action=action or {"A": 1, "B": 1},
        previous_action=previous,
        reference_action=reference or {"A": 1, "B": 1},
    )


def test_observation_kinds():
    user = MessageRef(5, "user")
    assert classify(user, facts(), MOH) == ["calm_observation"]
    assert classify(user, facts(rewards={"undersatiation_A": -2.0}), MOH) == ["negative_reward"]
    assert classify(user, facts(observation={"A": 110, "B": 140}), MOH) == ["out_of_band_level"]
    assert classify(user, facts(observation={"A": 110, "B": 132}), MOH) == ["calm_observation"]
    reminded = classify(MessageRef(5, "user", reminder=True), facts(), MOH)
    assert reminded == ["reminder"]
    stock = OBJECTIVES["sustainability"]
    assert classify(user, facts(observation={"stock": 4}), stock) == ["low_stock"]
    totals = OBJECTIVES["balancing-unbounded-objectives"]
    assert classify(user, facts(observation={"A": 100, "B": 150}), totals) == ["imbalanced_totals"]


def test_answer_kinds():
    me = MessageRef(5, "assistant")
    assert classify(me, facts(), MOH) == ["reference_action"]
    greedy = facts(action={"A": 0, "B": 20}, previous={"A": 0, "B": 15})
    assert classify(me, greedy, MOH) == ["above_reference", "escalating_action"]
    same = facts(action={"A": 0, "B": 0}, previous={"A": 0, "B": 0}, reference={"A": 2, "B": 0})
    assert classify(me, same, MOH) == ["repeated_action", "zero_action"]
    assert classify(me, facts(action={"A": 2, "B": 1}), MOH) == ["other_answer"]
    assert classify(MessageRef(0, "system"), None, MOH) == ["system_prompt"]


def test_every_kind_is_documented():
    assert all(KINDS.values())


def _autopsy(rows):
    return {
        "leave_one_out": {
            "messages": [
                {"rank": i + 1, "kinds": kinds, "influence": infl}
                for i, (kinds, infl) in enumerate(rows)
            ]
        }
    }


def test_atlas_counts_top_messages_and_shares():
    autopsies = [
        _autopsy(
            [(["negative_reward"], 3.0), (["calm_observation"], 1.0), (["repeated_action"], 0)]
        ),
        _autopsy([(["negative_reward", "out_of_band_level"], 2.0), (["repeated_action"], 0)]),
        _autopsy([(["calm_observation"], 0), (["repeated_action"], 0)]),  # nothing mattered
    ]
    atlas = aggregate_atlas(autopsies)
    assert atlas["autopsies"] == 3 and atlas["with_influence"] == 2
    neg = atlas["kinds"]["negative_reward"]
    assert (neg["candidates"], neg["influential"], neg["top1"]) == (2, 2, 2)
    assert neg["influence_share"] == (0.75 + 1.0) / 2
    rep = atlas["kinds"]["repeated_action"]
    assert (rep["candidates"], rep["influential"], rep["top1"], rep["carry_rate"]) == (3, 0, 0, 0)
    assert atlas["ranking"][0] == "negative_reward"
    assert atlas["ranking"][1] == "out_of_band_level"
    markdown = render_atlas_markdown(atlas)
    assert markdown.startswith("## Trigger atlas")
    assert "| negative_reward | 2 | 88% | 2 / 2 (100%) |" in markdown
    assert "No autopsies yet." in render_atlas_markdown(aggregate_atlas([]))
