"""The BioBlue loop as an Inspect solver: the project's environment, prompts, parsing,
history and mitigations, with Inspect's model doing the answering.

Each step: the environment's observation text goes into the history, the model is
asked (an invalid answer is asked again and never enters the history, as in
:class:`workers.runner.EpisodeRunner`), the environment steps, and the step's numbers are
recorded as an ``info`` event (the hooks publish it; the scorer reads the records from
the sample's store). With ``monitor=True`` the solver waits for the monitor's verdict of
each step and applies it: a savepoint is confirmed, ``reset`` restores the history to
it, ``remind`` adds the reminder to the next observation.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.log import transcript
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    get_model,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from monitor.integrations.inspect.episodes import STEP_SOURCE, sample_spec
from monitor.integrations.inspect.recovery import LINK_KEY, EpisodeLink, link_episode
from schemas.episode import EpisodeSpec
from schemas.reminder import reminder_text
from workers.environments import create_environment
from workers.environments.base import Environment, InvalidAction
from workers.history import History
from workers.mitigations import MitigationPlan, parse_mitigations
from workers.prompting import system_prompt
from workers.runner import MAX_REASKS

log = logging.getLogger(__name__)
STORE_KEY = "runaway_monitor:steps"
UNSUPPORTED = ("rolling-summary", "voluntary-reset", "environment-rollback")


def check_mitigation(name: str) -> MitigationPlan:
    """The plan of a mitigation the Inspect loop can run; ValueError names the others."""
    plan = parse_mitigations(name)
    for part in plan.names:
        if part.startswith(UNSUPPORTED):
            raise ValueError(f"mitigation {part!r} is not available in the Inspect tasks")
    return plan


def as_chat(messages: list[Any]) -> list[ChatMessage]:
    kinds = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[m["role"]](content=m["content"]) for m in messages]


@dataclass
class Episode:
    """One sample's episode: environment, history and what happened."""

    spec: EpisodeSpec
    env: Environment
    plan: MitigationPlan
    history: History
    records: list[dict[str, Any]] = field(default_factory=list)
    invalid_answers: int = 0
    applied: set[str] = field(default_factory=set)


def new_episode(spec: EpisodeSpec) -> Episode:
    env = create_environment(spec.environment or "", seed=spec.seed, **spec.env_options)
    plan = check_mitigation(spec.mitigation)
    return Episode(spec, env, plan, History(system_prompt(env, spec, plan)))


@solver
def bioblue_loop(monitor: bool = False) -> Solver:
    """Play the sample's episode (its metadata names environment, seed, steps, mitigation)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        spec, _ = sample_spec(state.uuid, dict(state.metadata), {})
        episode = new_episode(spec)
        link = await link_episode(state.uuid, spec) if monitor else None
        try:
            await _play(state, episode, link)
        finally:
            state.messages = as_chat(episode.history.messages)
            state.store.set(STORE_KEY, episode.records)
            if link is not None:
                state.store.set(LINK_KEY, link.summary())
                await link.close(len(episode.records))
        return state

    return solve


async def _play(state: TaskState, episode: Episode, link: EpisodeLink | None) -> None:
    env, history, plan = episode.env, episode.history, episode.plan
    model = get_model()
    for step in range(1, episode.spec.steps + 1):
        if env.done:
            break
        if plan.reminder_every and step % plan.reminder_every == 0:
            history.pending_reminder = reminder_text(episode.spec.objectives)
        observation = env.values()
        history.add_observation(env.observation_text())
        action, text, invalid = await _ask(model, episode, step)
        transition = env.step(action)
        history.add_answer(step, text)
        record = {
            "step": step,
            "observation": observation,
            "action": {k: float(v) for k, v in action.items()},
            "after": transition.after,
            "noise": transition.noise,
            "rewards": transition.rewards,
            "text": text,
            "invalid_answers": invalid,
            "mitigation": plan.label,
        }
        episode.records.append(record)
        if link is not None:
            link.expect(step)
        transcript().info(record, source=STEP_SOURCE)
        if link is not None:
            await link.publish_if_no_hooks(record)
            await link.apply(await link.verdict(step), _HistoryTarget(episode))


async def _ask(model: Any, episode: Episode, step: int) -> tuple[dict[str, int], str, int]:
    """Ask until the answer parses; rejected answers never enter the history."""
    invalid = 0
    while invalid <= MAX_REASKS:
        messages = episode.history.window(episode.plan.context_steps)
        output = await model.generate(as_chat(messages))
        text = output.completion
        try:
            return episode.env.parse_action(text), text, invalid
        except InvalidAction:
            invalid += 1
            episode.invalid_answers += 1
    raise RuntimeError(f"no valid answer at step {step} after {MAX_REASKS} re-asks")


class _HistoryTarget:
    """What a verdict acts on in the BioBlue loop: the runner's own History."""

    def __init__(self, episode: Episode) -> None:
        self.episode = episode

    def confirm(self, savepoint_step: int) -> None:
        self.episode.history.confirm_safe(savepoint_step)

    def reset(self, savepoint_step: int, reminder: str | None) -> int:
        plan = self.episode.plan
        if plan.recovery == "ignore":
            return -1
        if plan.recovery == "truncate":
            return self.episode.history.truncate()
        text = reminder or reminder_text(self.episode.spec.objectives)
        keep = text if plan.recovery == "restore-reminder" else None
        return self.episode.history.restore(savepoint_step, keep)

    def remind(self, reminder: str | None) -> None:
        self.episode.history.pending_reminder = reminder or reminder_text(
            self.episode.spec.objectives
        )
