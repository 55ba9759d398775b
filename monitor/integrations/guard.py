"""One agent run's link to the sidecar, shared by the framework integrations.

An :class:`EpisodeGuard` registers its episode on the first step, numbers the steps and
sends each one (its tool calls, text and state, and the objectives' numbers when the
user maps them) through :class:`monitor.client.Monitor`. The framework modules only
translate their own messages into :class:`AgentStep` and apply the verdict.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.client import Monitor, MonitorError, StepResult
from schemas.objectives import TOOL_OBJECTIVES

log = logging.getLogger(__name__)

JSON = Any
# A tool-using agent without numeric objectives is registered with one nominal objective
# (as the sidecar's OTLP and LiteLLM routes do); its steps carry tool calls and text only.
TOOL_AGENT = {
    "objectives": TOOL_OBJECTIVES.model_dump(mode="json", exclude_defaults=True)["objectives"]
}


@dataclass
class AgentStep:
    """What one model call of an agent did, in the sidecar's step shape (issue-14 contract)."""

    text: str | None = None
    tool_calls: list[dict[str, JSON]] = field(default_factory=list)
    state: dict[str, JSON] | None = None


# (step) -> (observation, action), or None when the step says nothing about the objectives
ObjectiveMap = Callable[[AgentStep], tuple[dict[str, float], dict[str, float]] | None]


def tool_call(name: str, arguments: Any, call_id: str | None = None, result: Any = None) -> dict:
    """One ``ToolCall`` of the contract; arguments given as a JSON string are parsed."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # kept as the string the model wrote
    call: dict[str, Any] = {"name": name, "arguments": arguments}
    if call_id is not None:
        call["id"] = call_id
    if result is not None:
        call["result"] = result
    return call


class EpisodeGuard:
    """Reports the steps of one agent run (one episode) and keeps the latest verdict.

    ``register`` is the body of ``POST /v1/episodes`` (``environment`` or ``objectives``,
    ``policy``, ``labels``, ``fail_mode``...); ``objective_map`` turns a step into the
    objectives' observation and action. Without objectives the episode is a tool agent's
    (:data:`TOOL_AGENT`): the monitor judges the tool calls and text alone (``loop``).

    ``unreachable``: what a step gets when the sidecar cannot be reached (the
    client-side twin of the sidecar's fail mode): ``raise`` (the agent stops with the
    error) or ``continue`` (an answer with ``fail_mode="open"``; the step is sent again
    with the next one's number). A step the sidecar took without its answer arriving is
    noticed at the next step (409) and the numbering follows the sidecar's.
    """

    def __init__(
        self,
        monitor: Monitor,
        *,
        episode_id: str | None = None,
        register: dict[str, Any] | None = None,
        objective_map: ObjectiveMap | None = None,
        unreachable: Literal["raise", "continue"] = "raise",
    ) -> None:
        self.monitor = monitor
        self.unreachable = unreachable
        self.episode_id = episode_id
        self.register_body = dict(register or {})
        self.objective_map = objective_map
        self.step = 0  # the last step reported
        self.last: StepResult | None = None
        self._registered = False

    def ensure_registered(self) -> str:
        if not self._registered:
            body = dict(self.register_body)
            if "environment" not in body and "objectives" not in body:
                body.update(TOOL_AGENT)
            if self.episode_id is not None:
                body["episode_id"] = self.episode_id
            self.episode_id = self.monitor.register(**body)
            self._registered = True
        assert self.episode_id is not None
        return self.episode_id

    def report(self, step: AgentStep) -> StepResult:
        """Send the next step; its verdict (blocking: async callers use a thread)."""
        try:
            try:
                return self._send(step)
            except MonitorError as exc:
                expected = exc.body.get("expected_step")
                if exc.status != 409 or not isinstance(expected, int) or expected <= 1:
                    raise
                self.step = expected - 1  # an earlier step went in, its answer was lost
                return self._send(step)
        except MonitorError as exc:  # status 0: refused, reset, timed out, a torn answer
            if exc.status != 0 or self.unreachable == "raise":
                raise
            log.warning("runaway-monitor unreachable: step not judged")
            return StepResult(
                episode_id=self.episode_id or "",
                step=self.step,
                verdict="continue",
                savepoint_step=None,
                runaway_index=0.0,
                fail_mode="open",
                reason="runaway-monitor unreachable",
            )

    def _send(self, step: AgentStep) -> StepResult:
        episode_id = self.ensure_registered()
        mapped = self.objective_map(step) if self.objective_map else None
        observation, action = mapped if mapped is not None else (None, None)
        result = self.monitor.step(
            episode_id,
            self.step + 1,
            observation=observation,
            action=action,
            text=step.text or None,
            tool_calls=step.tool_calls or None,
            state=step.state,
        )
        self.step += 1
        self.last = result
        return result

    def finish(self, reason: str = "done") -> None:
        if self._registered and self.episode_id is not None:
            self.monitor.finish(self.episode_id, reason)


def blocked_message(result: StepResult) -> str:
    """The text a blocked tool call answers with (the model reads it)."""
    why = result.reason or (f"flag {result.cause}" if result.cause else "runaway-monitor")
    return f"Tool call blocked by runaway-monitor: {why}"
