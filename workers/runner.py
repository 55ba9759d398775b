"""One episode: environment + agent + history + savepoints, publishing every step.

The runner never runs more than ``max_inflight_steps`` ahead of the detectors' verdicts
(backpressure: a slow detector slows the agents instead of growing memory). Verdicts
confirm savepoints; a RecoveryCommand restores the history to its savepoint, adds the
reminder, and is applied once per ``command_id`` however often it is delivered.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.episode import EpisodeSpec
from schemas.events import (
    EpisodeFinished,
    EpisodeStarted,
    RecoveryApplied,
    RecoveryCommand,
    Verdict,
)
from schemas.metrics import WorkerMetrics
from schemas.reminder import reminder_text
from schemas.settings import Settings
from schemas.wire import encode, encode_step
from workers.agents.base import Agent, AgentContext, AgentFinished
from workers.environments.base import Environment, InvalidAction
from workers.episode_log import EpisodeLog
from workers.history import History
from workers.inbox import Inbox
from workers.mitigations import MitigationPlan, parse_mitigations
from workers.prompting import SUMMARY_REQUEST, is_reset_request, observation_text, system_prompt
from workers.publisher import StreamPublisher

log = logging.getLogger(__name__)
MAX_REASKS = 10
USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd", "latency_s")


class AgentGaveUp(RuntimeError):
    """The agent gave no valid answer after ``MAX_REASKS`` re-asks."""


@dataclass
class EpisodeResult:
    episode_id: str
    environment: str
    agent: str
    steps: int = 0
    flips: int = 0
    self_imitation: int = 0
    recoveries: int = 0
    reminders: int = 0  # remind commands applied (the context kept, a reminder added)
    over_exploitation: int = 0
    loops: int = 0
    invalid_answers: int = 0
    outcome: str = "done"
    error: str | None = None
    flip_steps: list[int] = field(default_factory=list)
    recovery_steps: list[int] = field(default_factory=list)
    reminder_steps: list[int] = field(default_factory=list)
    recoveries_ignored: int = 0
    voluntary_resets: list[int] = field(default_factory=list)
    mitigation: str = "savepoint-recovery"
    lags_s: list[float] = field(default_factory=list)
    runaway_index: float = 0.0


class EpisodeRunner:
    def __init__(
        self,
        spec: EpisodeSpec,
        env: Environment,
        agent: Agent,
        publisher: StreamPublisher,
        inbox: Inbox,
        settings: Settings,
        metrics: WorkerMetrics,
        plan: MitigationPlan | None = None,
        log: EpisodeLog | None = None,
    ) -> None:
        self.spec = spec
        self.plan = plan or parse_mitigations(spec.mitigation)
        self.env = env
        self.agent = agent
        self.publisher = publisher
        self.inbox = inbox
        self.settings = settings
        self.metrics = metrics
        self.keys = settings.keys
        self.stream = self.keys.steps(self.keys.shard_of(spec.episode_id))
        self.history = History(system_prompt(env, spec, self.plan))
        self.env_snapshots: dict[int, dict[str, Any]] = {}
        self.log = log
        self.applied: set[str] = set()
        self.last_verdict = 0
        self.restored = False
        agent_kind = spec.agent.kind if spec.agent else "unknown"
        self.labels = (spec.environment or "custom", agent_kind, self.plan.label)
        self.result = EpisodeResult(
            spec.episode_id, self.labels[0], agent_kind, mitigation=self.plan.label
        )
        self._steps_metric = metrics.steps.labels(*self.labels)

    async def _publish(self, event: Any) -> None:
        await self._publish_entry(encode(event))

    async def _publish_entry(self, fields: dict[str, bytes]) -> None:
        await self.publisher.publish_raw(self.stream, fields, self.settings.steps_maxlen)
        if self.log is not None:
            self.log.add_json(fields["d"])

    async def run(self) -> EpisodeResult:
        await self._publish(EpisodeStarted(episode_id=self.spec.episode_id, spec=self.spec))
        try:
            for step in range(1, self.spec.steps + 1):
                if self.env.done:
                    self.result.outcome = "exhausted"
                    break
                await self._handle_control(block_until=step - self.settings.max_inflight_steps)
                await self._play(step)
            await self._publish(self._finished())
            await self._handle_control(block_until=self.result.steps)
        except asyncio.CancelledError:
            self.result.outcome = "cancelled"
            await asyncio.shield(self._publish(self._finished()))
            raise
        except AgentGaveUp as exc:
            self.result.outcome, self.result.error = "error", str(exc)
            await self._publish(self._finished())
        except AgentFinished:
            self.result.outcome = "exhausted"
            await self._publish(self._finished())
        return self.result

    def _finished(self) -> EpisodeFinished:
        return EpisodeFinished(
            episode_id=self.spec.episode_id,
            step=self.result.steps,
            reason=self.result.outcome,  # type: ignore[arg-type]
            error=self.result.error,
        )

    async def _play(self, step: int) -> None:
        plan = self.plan
        if plan.rollback_environment:
            self.env_snapshots[step - 1] = self.env.snapshot()
        if plan.reminder_every and step % plan.reminder_every == 0:
            self.history.pending_reminder = reminder_text(self.spec.objectives)
        observation = self.env.values()
        self.history.add_observation(observation_text(self.env, plan))
        action, text, invalid, reset, usage = await self._ask(step)
        transition = self.env.step(action)
        self.history.add_answer(step, text)
        if plan.summary_every and step % plan.summary_every == 0:
            await self._summarise(step)
        self.result.steps = step
        self.result.invalid_answers += invalid
        self._steps_metric.inc()
        if invalid:
            self.metrics.invalid_actions.labels(*self.labels).inc(invalid)
        entry = encode_step(
            self.spec.episode_id,
            step,
            observation,
            {k: float(v) for k, v in action.items()},
            transition.after,
            transition.noise or None,
            transition.rewards,
            text,
            invalid,
            self.labels[2],
            reset,
            usage,
        )
        await self._publish_entry(entry)

    async def _summarise(self, step: int) -> None:
        """Rolling summary: the model condenses its history, which then replaces it."""
        messages = [*self.history.messages, {"role": "user", "content": SUMMARY_REQUEST}]
        reply = await self.agent.act(AgentContext(messages, step, self.env, False))
        self.history.compress(step, reply.text)

    async def _ask(
        self, step: int
    ) -> tuple[dict[str, int], str, int, bool, dict[str, float] | None]:
        """Ask until the answer parses; rejected answers never enter the history.

        With ``voluntary-reset``, a RESET answer (once per step) restores the history to
        the last savepoint and the step's observation is asked again.
        """
        reset = False
        invalid = 0
        usage: dict[str, float] | None = None  # None while every answer was free (scripted)
        while invalid <= MAX_REASKS:
            messages = self.history.window(self.plan.context_steps)
            reply = await self.agent.act(AgentContext(messages, step, self.env, self.restored))
            self.restored = False
            spent = reply.usage
            if spent.input_tokens or spent.output_tokens or spent.cost_usd or spent.latency_s:
                if usage is None:
                    usage = dict.fromkeys(USAGE_KEYS, 0.0)
                for key in USAGE_KEYS:
                    usage[key] += getattr(spent, key)
            if self.plan.voluntary_reset and not reset and is_reset_request(reply.text):
                reset = True
                self.result.voluntary_resets.append(step)
                observation = self.history.messages.pop()
                self.history.restore(self.history.safe_step)
                self.history.messages.append(observation)
                self.restored = True
                continue
            try:
                return self.env.parse_action(reply.text), reply.text, invalid, reset, usage
            except InvalidAction:
                invalid += 1
        raise AgentGaveUp(f"no valid answer at step {step} after {MAX_REASKS} re-asks")

    async def _handle_control(self, block_until: int) -> None:
        """Apply queued control events; wait while verdicts lag ``block_until`` or more."""
        inbox = self.inbox
        while True:
            while inbox:
                await self._apply(inbox.get_nowait())
            if self.last_verdict >= block_until:
                return
            event = await inbox.next(self.settings.verdict_timeout_s)
            if event is None:
                log.warning(
                    "episode %s: no verdict for step %d within %.0fs; still waiting",
                    self.spec.episode_id,
                    self.last_verdict + 1,
                    self.settings.verdict_timeout_s,
                )
                continue
            await self._apply(event)

    async def _apply(self, event: Any) -> None:
        if isinstance(event, Verdict):
            if event.step <= self.last_verdict:
                return  # redelivered
            if self.log is not None:
                self.log.add(event)
            self.last_verdict = event.step
            lag = max(0.0, time.time() - event.step_ts)
            self.result.lags_s.append(lag)
            self.metrics.verdict_lag.observe(lag)
            self.result.runaway_index = event.runaway_index
            if event.savepoint_step is not None:
                self.history.confirm_safe(event.savepoint_step)
                for old in [s for s in self.env_snapshots if s < event.savepoint_step]:
                    del self.env_snapshots[old]
            for flag in event.detections:
                if flag == "runaway":
                    self.result.flips += 1
                    self.result.flip_steps.append(event.step)
                elif flag == "self_imitation":
                    self.result.self_imitation += 1
                elif flag == "over_exploitation":
                    self.result.over_exploitation += 1
                elif flag == "loop":
                    self.result.loops += 1
        elif isinstance(event, RecoveryCommand):
            await self._recover(event)

    async def _recover(self, cmd: RecoveryCommand) -> None:
        if cmd.command_id in self.applied:
            return
        self.applied.add(cmd.command_id)
        if self.log is not None:
            self.log.add(cmd)
        if self.result.steps >= self.spec.steps or self.result.outcome != "done":
            return  # the episode is over; nothing left to recover
        plan = self.plan
        if plan.recovery == "ignore":
            self.result.recoveries_ignored += 1
            return
        if cmd.action == "remind":
            await self._remind(cmd)
            return
        savepoint = cmd.savepoint_step
        if plan.recovery == "truncate":
            dropped = self.history.truncate()
        else:
            reminder = cmd.reminder or reminder_text(self.spec.objectives)
            dropped = self.history.restore(
                savepoint, reminder if plan.recovery == "restore-reminder" else None
            )
        if plan.rollback_environment or cmd.rollback_environment:
            kept = [s for s in self.env_snapshots if s <= savepoint]
            if kept:
                self.env.restore(self.env_snapshots[max(kept)])
        self.restored = True
        self.result.recoveries += 1
        self.result.recovery_steps.append(self.result.steps)
        self.metrics.recoveries.labels(*self.labels).inc()
        await self._publish(
            RecoveryApplied(
                episode_id=self.spec.episode_id,
                step=self.result.steps,
                command_id=cmd.command_id,
                savepoint_step=cmd.savepoint_step,
                messages_dropped=dropped,
            )
        )

    async def _remind(self, cmd: RecoveryCommand) -> None:
        """A ``remind`` command: the next observation carries the reminder; the context
        stays as it is (no savepoint restored, nothing dropped). Once per command_id."""
        self.history.pending_reminder = cmd.reminder or reminder_text(self.spec.objectives)
        self.result.reminders += 1
        self.result.reminder_steps.append(self.result.steps)
        self.metrics.reminders.labels(*self.labels).inc()
        applied = RecoveryApplied(
            episode_id=self.spec.episode_id,
            step=self.result.steps,
            command_id=cmd.command_id,
            action="remind",
            savepoint_step=cmd.savepoint_step,
            messages_dropped=0,
        )
        await self._publish(applied)
