"""Episodes fed by integrations (OTLP traces, the LiteLLM guardrail): register and step.

These callers never register an episode themselves: the first span or request of a
conversation registers it, with a fixed spec so that registering again is a no-op. A
tool-using agent has no numeric objectives, so its spec names one nominal objective and
its steps carry ``tool_calls`` and ``text`` with empty observation and action (the
issue-14 contract); the detectors judge those (the ``loop`` flag). An episode already
registered over ``/v1/episodes`` under the same id keeps its own spec (its objectives,
detector settings and fail mode).
"""

import asyncio
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web

from monitor.api.errors import ApiError
from monitor.api.models import StepVerdict
from monitor.api.state import FEED, METRICS, SETTINGS, STORE, WAITERS
from monitor.api.verdicts import Ticket
from schemas.episode import EpisodeSpec
from schemas.events import MAX_TOOL_ARGS, MAX_TOOL_CALLS, MAX_TOOL_RESULT, StepEvent, ToolCall
from schemas.metrics import child
from schemas.objectives import TOOL_OBJECTIVES


def tool_agent_spec(episode_id: str, source: str, model: str | None = None) -> EpisodeSpec:
    labels = {"source": source, **({"model": model} if model else {})}
    return EpisodeSpec(
        episode_id=episode_id,
        objectives=TOOL_OBJECTIVES,
        steps=100_000,
        mitigation="none",
        labels=labels,
    )


def bounded_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call cut to the step's bounds: long text arguments and results are truncated
    (a trace or a conversation is not refused for one large tool output)."""
    args, result = call.get("arguments"), call.get("result")
    if isinstance(args, dict) and len(orjson.dumps(args)) > MAX_TOOL_ARGS:
        args = orjson.dumps(args).decode()
    if isinstance(args, str):
        args = args[: MAX_TOOL_ARGS // 4]
    if result is not None and len(orjson.dumps(result)) > MAX_TOOL_RESULT:
        text = result if isinstance(result, str) else orjson.dumps(result).decode()
        result = text[: MAX_TOOL_RESULT // 4]
    return {**call, "arguments": args, "result": result}


async def ensure_episode(app: web.Application, spec: EpisodeSpec) -> EpisodeSpec:
    """Register ``spec`` unless its id exists; the episode's registered spec."""
    labels = {
        "environment": "custom",
        "source": spec.labels.get("source", "api"),
        "model": spec.labels.get("model", "unknown"),
        "mitigation": "none",
    }
    try:
        created = await app[STORE].register(spec, labels)
    except ApiError as exc:
        if exc.code != "episode_exists":
            raise
        return await app[STORE].spec(spec.episode_id)
    if created:
        app[FEED].remember(spec.episode_id, None, spec.labels)
        app[METRICS].registered.labels("custom").inc()
    return spec


async def accepted_step(app: web.Application, episode_id: str) -> int:
    return int((await app[STORE].summary(episode_id)).get("accepted_step", 0))


async def publish(
    app: web.Application,
    spec: EpisodeSpec,
    step: int,
    tool_calls: list[dict[str, Any]],
    text: str | None,
) -> None:
    """Publish one step (ApiError 409 when it is not the next one)."""
    event = StepEvent(
        episode_id=spec.episode_id,
        step=step,
        observation={},
        action={},
        text=text,
        tool_calls=[ToolCall.model_validate(bounded_call(c)) for c in tool_calls[:MAX_TOOL_CALLS]],
    )
    await app[STORE].accept_step(event)
    app[FEED].follow(spec.episode_id)
    metrics = app[METRICS]
    labels = metrics.episode_labels("custom", spec.labels.get("model", "unknown"), "none")
    child(metrics.steps, *labels).inc()


async def verdict_of(
    request: web.Request, spec: EpisodeSpec, step: int, ticket: Ticket
) -> StepVerdict:
    """The detectors' verdict on ``step`` within the step timeout, else the fail mode's.

    ``ticket``: the caller's ``app[WAITERS].expect(episode_id, step)``, taken before
    publishing.
    """
    from monitor.api.routes_episodes import _fail_mode_verdict

    app = request.app
    answer = await app[WAITERS].wait(spec.episode_id, step, ticket, app[SETTINGS].step_timeout_s)
    if answer is None:
        result = await _fail_mode_verdict(request, spec, step)
        app[METRICS].fail_mode.labels(result.fail_mode.value if result.fail_mode else "").inc()
        child(app[METRICS].verdicts, result.verdict, "fail_mode").inc()
        return result
    verdict, cmd = answer
    child(app[METRICS].verdicts, verdict.verdict, "detector").inc()
    return StepVerdict(
        episode_id=spec.episode_id,
        step=step,
        verdict=verdict.verdict,
        savepoint_step=cmd.savepoint_step if cmd else verdict.savepoint_step,
        runaway_index=verdict.runaway_index,
        flags=verdict.flags,
        hazard=verdict.hazard,
        detections=verdict.detections,
        cause=verdict.cause,
        policy=verdict.policy,
        reminder=(cmd.reminder if cmd else None) or verdict.reminder,
        reason=(cmd.reason if cmd else None) or verdict.reason,
        command_id=cmd.command_id if cmd else None,
    )


class EpisodeLocks:
    """One lock per episode, so concurrent requests of one episode number steps in turn."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()

    def __call__(self, episode_id: str) -> asyncio.Lock:
        lock = self._locks.get(episode_id)
        if lock is None:
            lock = self._locks[episode_id] = asyncio.Lock()
            for key in list(self._locks)[: max(0, len(self._locks) - self.limit)]:
                if not self._locks[key].locked():
                    del self._locks[key]
        self._locks.move_to_end(episode_id)
        return lock
