"""Rebuild, from an episode log, exactly what the model was shown at each step.

Why re-simulate: the log keeps the model's answers and the environment's noise, not the
observation texts nor the context. Stepping a fresh environment with the logged noise
and actions, and replaying the log's verdicts (savepoints), recoveries and mitigations
through the runner's own :class:`~workers.history.History`, gives the message list the
model answered at any step, byte for byte, without storing contexts in the log.

Not rebuildable: ``rolling-summary-K`` (the model's summaries are not logged).
"""

import copy
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.episode import EpisodeSpec
from schemas.events import (
    EpisodeStarted,
    Event,
    RecoveryApplied,
    RecoveryCommand,
    StepEvent,
    Verdict,
)
from schemas.reminder import reminder_text
from workers.agents.base import Message
from workers.environments import Action, Environment, create_environment
from workers.history import History
from workers.mitigations import parse_mitigations
from workers.prompting import system_prompt

_EVENT = TypeAdapter(Event)


class RebuildError(ValueError):
    """The log cannot be re-simulated; the message says why."""


@dataclass(frozen=True, slots=True)
class LoggedEpisode:
    """A parsed episode log: the spec and every event in the order the worker logged it."""

    source: str
    spec: EpisodeSpec
    events: list[Event]

    @property
    def steps(self) -> list[StepEvent]:
        return [e for e in self.events if isinstance(e, StepEvent)]


def load_episode_log(path: Path) -> LoggedEpisode:
    """Parse a JSONL episode log (``run --log-dir``, ``RESULTS/logs``)."""
    events: list[Event] = []
    spec: EpisodeSpec | None = None
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise RebuildError(f"{path}: cannot read: {exc}") from None
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = _EVENT.validate_python(orjson.loads(line))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0][:120]
            raise RebuildError(f"{path}: line {no}: not an episode event: {first}") from None
        if isinstance(event, EpisodeStarted) and spec is None:
            spec = event.spec
        events.append(event)
    if spec is None:
        raise RebuildError(f"{path}: no episode_started event")
    if spec.environment is None:
        raise RebuildError(f"{path}: the episode has no built-in environment to re-simulate")
    return LoggedEpisode(str(path), spec, events)


def action_of(event: StepEvent) -> Action:
    """The logged action as integers (the wire carries floats)."""
    return {k: round(v) for k, v in event.action.items()}


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a context message came from: the step and what it was."""

    step: int  # 0 for the system prompt
    role: str
    reminder: bool = False  # a user message carrying an objectives reminder


@dataclass(slots=True)
class StepFacts:
    """What a step showed and did, for classifying its messages (pure data)."""

    step: int
    observation: dict[str, float]
    shown_rewards: dict[str, float]  # the previous step's rewards, shown in this observation
    action: Action
    previous_action: Action | None
    reference_action: Action


@dataclass(slots=True)
class StepView:
    """The context the model answered at ``step``, and the environment it acted in."""

    step: int
    event: StepEvent
    messages: list[Message]
    refs: list[MessageRef]
    env: Environment  # a private copy, state before the step's action

    def history_after(self) -> list[Message]:
        """The context plus the step's answer: "the history up to this step"."""
        return [*self.messages, {"role": "assistant", "content": self.event.text or ""}]


@dataclass(slots=True)
class Replay:
    """The result of re-simulating a log: captured views, per-step facts, mismatches."""

    views: dict[int, StepView] = field(default_factory=dict)
    facts: dict[int, StepFacts] = field(default_factory=dict)
    mismatches: list[int] = field(default_factory=list)  # steps whose observation differs


def fresh_environment(spec: EpisodeSpec, noise: list[dict[str, float]]) -> Environment:
    """The episode's environment from its seed, replaying ``noise`` per step."""
    assert spec.environment is not None
    return create_environment(
        spec.environment, seed=spec.seed, noise_trace=noise, **spec.env_options
    )


def replay(episode: LoggedEpisode, capture: set[int] | None = None) -> Replay:
    """Re-simulate ``episode``; keep a :class:`StepView` for each step in ``capture``."""
    spec = episode.spec
    plan = parse_mitigations(spec.mitigation)
    if plan.summary_every:
        raise RebuildError(
            "rolling-summary contexts cannot be rebuilt: the model's summaries are not logged"
        )
    noise = [dict(e.noise or {}) for e in episode.steps]
    env = fresh_environment(spec, noise)
    history = History(system_prompt(env, spec, plan))
    refs: dict[int, MessageRef] = {id(history.messages[0]): MessageRef(0, "system")}
    reminders: dict[str, str | None] = {}
    snapshots: dict[int, dict] = {}
    out = Replay()
    previous: Action | None = None
    last_rewards: dict[str, float] = {}
    for event in episode.events:
        if isinstance(event, StepEvent):
            step = event.step
            if plan.rollback_environment:
                snapshots[step - 1] = env.snapshot()
            if env.done:
                raise RebuildError(f"step {step}: the re-simulated environment is already over")
            if plan.reminder_every and step % plan.reminder_every == 0:
                history.pending_reminder = reminder_text(spec.objectives)
            _align_noise(env, noise, step)
            values = env.values()
            if any(abs(values[k] - v) > 1e-6 for k, v in event.observation.items()):
                out.mismatches.append(step)
            reminded = history.pending_reminder is not None
            history.add_observation(env.observation_text())
            refs[id(history.messages[-1])] = MessageRef(step, "user", reminded)
            if event.voluntary_reset:
                observation = history.messages.pop()
                history.restore(history.safe_step)
                history.messages.append(observation)
            action = action_of(event)
            out.facts[step] = StepFacts(
                step, dict(values), dict(last_rewards), action, previous, env.reference_action()
            )
            if capture is None or step in capture:
                shown = list(history.window(plan.context_steps))
                out.views[step] = StepView(
                    step, event, shown, [refs[id(m)] for m in shown], copy.deepcopy(env)
                )
            transition = env.step(action)
            history.add_answer(step, event.text or "")
            refs[id(history.messages[-1])] = MessageRef(step, "assistant")
            previous, last_rewards = action, dict(transition.rewards)
        elif isinstance(event, Verdict) and event.savepoint_step is not None:
            history.confirm_safe(event.savepoint_step)
        elif isinstance(event, RecoveryCommand):
            reminders[event.command_id] = event.reminder
        elif isinstance(event, RecoveryApplied):
            _recover(history, plan.recovery, spec, reminders.get(event.command_id), event)
            if plan.rollback_environment:
                kept = [s for s in snapshots if s <= event.savepoint_step]
                if kept:
                    env.restore(snapshots[max(kept)])
    return out


def _align_noise(env: Environment, noise: list[dict[str, float]], step: int) -> None:
    """Make the environment draw step ``step``'s logged noise at its current step number.

    After an environment rollback the environment's step counter lags the log's; the
    noise for the logged step is what actually happened, so it goes where it is read.
    """
    index = env.step_number - 1
    if index != step - 1 and env.noise_trace is not None and index < len(env.noise_trace):
        env.noise_trace[index] = noise[step - 1]


def _recover(
    history: History,
    recovery: str,
    spec: EpisodeSpec,
    reminder: str | None,
    event: RecoveryApplied,
) -> None:
    """What :meth:`workers.runner.EpisodeRunner._recover` did to the history."""
    if event.action == "remind":  # EpisodeRunner._remind: the context is kept
        history.pending_reminder = reminder or reminder_text(spec.objectives)
        return
    if recovery == "truncate":
        history.truncate()
        return
    text = reminder or reminder_text(spec.objectives)
    history.restore(event.savepoint_step, text if recovery == "restore-reminder" else None)
