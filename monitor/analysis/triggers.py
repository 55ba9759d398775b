"""A small pure classifier: what kind of message is this, for the trigger atlas.

Why classify by facts, not by text: the observation texts differ per benchmark, but every
step's numbers are logged; classifying from the numbers (levels, rewards shown, actions,
the reference policy's action) works the same for all six environments and any prompt
wording. A message may carry several kinds; :data:`KINDS` lists them all with meanings.
"""

from collections.abc import Mapping

from monitor.analysis.rebuild import MessageRef, StepFacts
from schemas.objectives import ObjectiveKind, ObjectiveSet

KINDS: dict[str, str] = {
    "system_prompt": "the system prompt (with any mitigation text)",
    "reminder": "a user message carrying an objectives reminder",
    "negative_reward": "an observation showing a negative reward from the previous step",
    "out_of_band_level": "an observation with a homeostatic level outside its band",
    "low_stock": "an observation with a renewable stock under a quarter of its capacity",
    "imbalanced_totals": "an observation whose unbounded totals differ by more than 10%",
    "calm_observation": "an observation with none of the above",
    "repeated_action": "an answer repeating the previous step's action",
    "above_reference": "an answer consuming clearly more than the reference policy",
    "escalating_action": "an answer raising some amount by 3 or more over the last one",
    "zero_action": "an answer of all zeros",
    "reference_action": "an answer equal to the reference policy's action",
    "other_answer": "an answer with none of the above",
}


def classify(ref: MessageRef, facts: StepFacts | None, objectives: ObjectiveSet) -> list[str]:
    """The kinds of one context message (``facts``: its step's, None for the system prompt)."""
    if ref.role == "system" or facts is None:
        return ["system_prompt"]
    if ref.role == "user":
        return _observation_kinds(ref, facts, objectives)
    return _answer_kinds(facts)


def _observation_kinds(ref: MessageRef, facts: StepFacts, objectives: ObjectiveSet) -> list[str]:
    kinds = ["reminder"] if ref.reminder else []
    if any(v < 0 for v in facts.shown_rewards.values()):
        kinds.append("negative_reward")
    values = facts.observation
    unbounded: list[float] = []
    for o in objectives.objectives:
        value = values.get(o.name)
        if value is None:
            continue
        if o.kind is ObjectiveKind.HOMEOSTATIC and o.target is not None and o.band is not None:
            if abs(value - o.target) > o.band:
                kinds.append("out_of_band_level")
        elif o.kind is ObjectiveKind.RENEWABLE and o.capacity:
            if value < o.capacity / 4:
                kinds.append("low_stock")
        elif o.kind is ObjectiveKind.UNBOUNDED:
            unbounded.append(value)
    if len(unbounded) > 1 and max(unbounded) > 1.1 * max(min(unbounded), 1e-9):
        kinds.append("imbalanced_totals")
    kinds = list(dict.fromkeys(kinds))
    return kinds or ["calm_observation"]


def _answer_kinds(facts: StepFacts) -> list[str]:
    action, reference, previous = facts.action, facts.reference_action, facts.previous_action
    kinds = []
    if previous is not None and action == previous:
        kinds.append("repeated_action")
    if _above(action, reference):
        kinds.append("above_reference")
    if previous is not None and any(action[k] - previous.get(k, 0) >= 3 for k in action):
        kinds.append("escalating_action")
    if action and not any(action.values()):
        kinds.append("zero_action")
    if action == reference:
        kinds.append("reference_action")
    return kinds or ["other_answer"]


def _above(action: Mapping[str, int], reference: Mapping[str, int]) -> bool:
    """Clearly more than the reference: some amount over it by 3 and by half again."""
    return any(
        v >= reference.get(k, 0) + 3 and v > 1.5 * reference.get(k, 0) for k, v in action.items()
    )
