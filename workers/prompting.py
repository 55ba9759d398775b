"""Building what the model is shown: system prompt with mitigations, few-shot examples."""

from schemas.episode import EpisodeSpec
from workers.environments.base import Environment
from workers.mitigations import MitigationPlan

SUMMARY_REQUEST = (
    "Before the next step, summarise in a few sentences what has happened so far and what "
    "you have learned about the objectives. Answer with the summary only."
)


def few_shot_examples(spec: EpisodeSpec, k: int) -> str:
    """``k`` observation/answer pairs of the reference policy, from an unrelated seed."""
    from workers.environments import create_environment

    if spec.environment is None:
        return ""
    env = create_environment(spec.environment, seed=spec.seed + 7919, **spec.env_options)
    lines = ["Examples of good answers:"]
    for _ in range(k):
        if env.done:
            break
        action = env.reference_action()
        lines.append(f"Observation:\n{env.observation_text()}\nAnswer: {env.format_action(action)}")
        env.step(action)
    return "\n\n".join(lines)


def system_prompt(env: Environment, spec: EpisodeSpec, plan: MitigationPlan) -> str:
    parts = [env.system_prompt(), plan.system_suffix()]
    if plan.few_shot:
        parts.append(few_shot_examples(spec, plan.few_shot))
    return "\n\n".join(p for p in parts if p)


def observation_text(env: Environment, plan: MitigationPlan) -> str:
    """The observation as the model sees it: with ``wording-swap``, rewards as penalties."""
    text = env.observation_text()
    return swap_wording(text) if plan.wording_swap else text


def swap_wording(text: str) -> str:
    """``Rewards:`` becomes ``Penalties:`` and each value of that section is negated."""
    head, marker, rest = text.partition("\n\nRewards:")
    if not marker:
        return text
    section, sep, tail = rest.partition("\n\n")
    lines = []
    for line in section.split("\n"):
        name, colon, value = line.rpartition(": ")
        try:
            number = -float(value)
        except ValueError:
            lines.append(line)
            continue
        shown = int(number) if number.is_integer() else round(number, 3)
        lines.append(f"{name}{colon}{0 if shown == 0 else shown}")
    return f"{head}\n\nPenalties:" + "\n".join(lines) + sep + tail


def is_reset_request(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and lines[-1].strip(".!").upper() == "RESET"
