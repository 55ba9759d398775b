"""``/v1/episodes``: register, report steps (and get the verdict), finish, read, list.

A step is validated against the episode (its objective names), published atomically with
the order check (:mod:`monitor.api.store`), then answered with the detectors' verdict
within ``step_timeout_s``. When the detectors do not answer in time, the episode's (or
the service's) fail mode answers instead, says so in ``fail_mode`` and is counted.
"""

import asyncio
import time
import uuid
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from monitor.api.errors import ApiError, json_response, validation_error
from monitor.api.models import FinishRequest, RegisterRequest, StepRequest, StepVerdict
from monitor.api.state import FEED, METRICS, SETTINGS, STORE, WAITERS
from monitor.api.views import episode_row, stored_float
from schemas.episode import EpisodeSpec, FailMode
from schemas.events import EpisodeFinished, StepEvent
from schemas.metrics import child
from schemas.objectives import ObjectiveSet
from workers.environments.catalog import ENVIRONMENT_NAMES, OBJECTIVES

M = TypeVar("M", bound=BaseModel)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/episodes", register)
    app.router.add_get("/v1/episodes/{episode_id}", get_episode)
    app.router.add_post("/v1/episodes/{episode_id}/steps", post_step)
    app.router.add_post("/v1/episodes/{episode_id}/finish", finish)


async def _body(request: web.Request, model: type[M], empty_ok: bool = False) -> M:
    """The JSON body as ``model``; 400/422 naming the field, never echoing the body."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].header_timeout_s):
            raw = await request.read()
    except TimeoutError:  # a body trickled in: the connection is not held for it
        raise ApiError(408, "body_timeout", "the body did not arrive in time", "body") from None
    if not raw and empty_ok:
        raw = b"{}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object", "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _spec(req: RegisterRequest) -> EpisodeSpec:
    if req.environment is not None:
        if req.environment not in OBJECTIVES:
            raise ApiError(
                422,
                "validation_error",
                f"unknown environment; one of: {', '.join(ENVIRONMENT_NAMES)}",
                "environment",
            )
        objectives = OBJECTIVES[req.environment]
    else:
        try:
            objectives = ObjectiveSet(
                objectives=tuple(req.objectives or ()), total_action_limit=req.total_action_limit
            )
        except ValidationError as exc:
            raise validation_error(exc, "objectives.") from None
    return EpisodeSpec(
        episode_id=req.episode_id or f"ep-{uuid.uuid4().hex}",
        environment=req.environment,
        env_options=req.env_options,
        objectives=objectives,
        steps=req.steps,
        detector=req.detector,
        policy=req.policy,
        fail_mode=req.fail_mode,
        labels=req.labels,
    )


async def register(request: web.Request) -> web.Response:
    req = await _body(request, RegisterRequest)
    spec = _spec(req)
    app = request.app
    labels = {
        "environment": spec.environment or "custom",
        "model": spec.labels.get("model", "unknown"),
        "mitigation": spec.labels.get("mitigation", "none"),
    }
    created = await app[STORE].register(spec, labels)
    app[FEED].remember(spec.episode_id, spec.environment, spec.labels)
    if created:
        app[METRICS].registered.labels(app[METRICS].environment(labels["environment"])).inc()
    settings = app[SETTINGS]
    body = {
        "episode_id": spec.episode_id,
        "objectives": list(spec.objectives.names),
        "fail_mode": (spec.fail_mode or settings.fail_mode).value,
        "step_timeout_s": settings.step_timeout_s,
        "created": created,
    }
    return json_response(body, status=201 if created else 200)


def _check_objectives(spec: EpisodeSpec, req: StepRequest) -> None:
    """Numeric steps give every objective; a step with tool calls, text or state may give
    fewer (the rest come through pointers or count as left alone), never unknown ones."""
    if req.empty:
        raise ApiError(
            422, "validation_error", "a step needs 'action', 'tool_calls' or 'text'", "action"
        )
    names = set(spec.objectives.names)
    partial = bool(req.tool_calls) or req.text is not None or req.state is not None
    for field in ("observation", "action"):
        given = set(getattr(req, field))
        if given != names and not (partial and given <= names):
            missing = sorted(names - given)
            detail = f"missing {missing}" if missing else f"{len(given - names)} unknown name(s)"
            raise ApiError(
                422,
                "validation_error",
                f"objectives must be exactly {sorted(names)} ({detail})",
                field,
            )


async def post_step(request: web.Request) -> web.Response:
    received = time.perf_counter()
    app = request.app
    settings, metrics = app[SETTINGS], app[METRICS]
    episode_id = request.match_info["episode_id"]
    wait = request.query.get("wait", "true").lower() not in ("false", "0", "no")
    req = await _body(request, StepRequest)
    spec = await app[STORE].spec(episode_id)
    _check_objectives(spec, req)
    event = StepEvent(
        episode_id=episode_id,
        step=req.step,
        observation=req.observation,
        action=req.action,
        rewards=req.rewards,
        text=req.text,
        invalid_answers=req.invalid_answers,
        mitigation=req.mitigation,
        tool_calls=req.tool_calls,
        state=req.state,
    )
    waiters = app[WAITERS]
    # this request's own ticket, before publishing (the verdict can be quick); a refused
    # duplicate drops only its own ticket
    ticket = waiters.expect(episode_id, req.step) if wait else None
    try:
        await app[STORE].accept_step(event)
    except BaseException:
        if ticket is not None:
            waiters.forget(episode_id, req.step, ticket)
        raise
    app[FEED].follow(episode_id)
    labels = metrics.episode_labels(
        spec.environment or "custom",
        spec.labels.get("model", "unknown"),
        spec.labels.get("mitigation", "none"),
    )
    child(metrics.steps, *labels).inc()
    if ticket is None:
        return json_response(
            {"episode_id": episode_id, "step": req.step, "accepted": True, "verdict": None},
            status=202,
        )
    answer = await waiters.wait(episode_id, req.step, ticket, settings.step_timeout_s)
    if answer is not None:
        verdict, cmd = answer
        result = StepVerdict(
            episode_id=episode_id,
            step=req.step,
            verdict=verdict.verdict,
            savepoint_step=verdict.savepoint_step,
            runaway_index=verdict.runaway_index,
            flags=verdict.flags,
            hazard=verdict.hazard,
            detections=verdict.detections,
            reminder=verdict.reminder or (cmd.reminder if cmd else None),
            reason=verdict.reason or (cmd.reason if cmd else None),
            cause=verdict.cause,
            policy=verdict.policy,
            command_id=cmd.command_id if cmd else None,
        )
        if cmd is not None:
            result.savepoint_step = cmd.savepoint_step
        source = "detector"
    else:
        result = await _fail_mode_verdict(request, spec, req.step)
        source = "fail_mode"
        metrics.fail_mode.labels(result.fail_mode.value if result.fail_mode else "").inc()
    elapsed = time.perf_counter() - received
    result.latency_ms = round(elapsed * 1000, 3)
    child(metrics.verdicts, result.verdict, source).inc()
    child(metrics.verdict_latency, source).observe(elapsed)
    # pydantic's serializer writes the JSON bytes directly (no dict, no json.dumps)
    return web.Response(body=result.model_dump_json().encode(), content_type="application/json")


async def _fail_mode_verdict(request: web.Request, spec: EpisodeSpec, step: int) -> StepVerdict:
    """The explicit answer when no verdict came in time: closed holds, open continues."""
    app = request.app
    mode = spec.fail_mode or app[SETTINGS].fail_mode
    savepoint = app[WAITERS].savepoints.get(spec.episode_id)
    summary: dict[str, str] = {}
    try:
        summary = await app[STORE].summary(spec.episode_id)
    except ApiError:
        pass  # Redis is gone as well: the fail mode still answers
    flags = [f for f in summary.get("flags", "").split(",") if f]
    return StepVerdict(
        episode_id=spec.episode_id,
        step=step,
        verdict="reset" if mode is FailMode.CLOSED else "continue",
        savepoint_step=(savepoint or 0) if mode is FailMode.CLOSED else savepoint,
        runaway_index=stored_float(summary.get("runaway_index")) or 0.0,
        flags=flags,
        reason="no verdict from the detectors in time",
        fail_mode=mode,
    )


async def finish(request: web.Request) -> web.Response:
    req = await _body(request, FinishRequest, empty_ok=True)
    episode_id = request.match_info["episode_id"]
    await request.app[STORE].spec(episode_id)
    step = int((await request.app[STORE].summary(episode_id)).get("accepted_step", 0))
    await request.app[STORE].finish(
        EpisodeFinished(episode_id=episode_id, step=step, reason=req.reason)
    )
    return json_response({"episode_id": episode_id, "status": "finished", "steps": step})


def _history(entries: list[Any]) -> dict[str, list[dict[str, Any]]]:
    from schemas.wire import BadEntry, decode

    history, flips, recoveries = [], [], []
    for _, fields in reversed(entries):
        try:
            ev = decode(fields)
        except BadEntry:
            continue
        if ev.kind == "verdict":
            history.append(
                {
                    "step": ev.step,
                    "runaway_index": ev.runaway_index,
                    "verdict": ev.verdict,
                    "savepoint_step": ev.savepoint_step,
                    "cause": ev.cause,
                }
            )
            flips += [
                {"step": ev.step, "flag": d, "runaway_index": ev.runaway_index}
                for d in ev.detections
            ]
        elif ev.kind == "recovery_command":
            recoveries.append(
                {
                    "step": ev.step,
                    "savepoint_step": ev.savepoint_step,
                    "reason": ev.reason,
                    "command_id": ev.command_id,
                    "action": ev.action,
                    "cause": ev.cause,
                }
            )
    return {"history": history, "flips": flips, "recoveries": recoveries}


async def get_episode(request: web.Request) -> web.Response:
    episode_id = request.match_info["episode_id"]
    store = request.app[STORE]
    summary = await store.summary(episode_id)
    if not summary:
        raise ApiError(404, "unknown_episode", "no such episode", "episode_id")
    body = episode_row(episode_id, summary).model_dump()
    if "spec" in summary:
        spec = EpisodeSpec.model_validate_json(summary["spec"])
        body["objectives"] = [
            o.model_dump(mode="json", exclude_none=True) for o in spec.objectives.objectives
        ]
        body["fail_mode"] = (spec.fail_mode or request.app[SETTINGS].fail_mode).value
        body["labels"] = spec.labels
    entries = await store.control_entries(episode_id, 2 * request.app[SETTINGS].control_maxlen)
    body.update(_history(entries))
    return json_response(body)
