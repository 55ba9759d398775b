"""``POST /v1/traces``: OTLP/HTTP trace exports in, GenAI spans as steps of episodes.

An agent instrumented with an OpenTelemetry GenAI or OpenInference instrumentation is
monitored by pointing its OTLP exporter at the sidecar (zero code). Both encodings
(``application/x-protobuf``, ``application/json``) are accepted, with the sidecar's
bearer auth. Answers follow the OTLP/HTTP spec: 200 with an ExportTraceServiceResponse
(a partial success counts the rejected spans and says why), 400 with a Status when the
body cannot be decoded, 415 for another content type (or protobuf without the ``otel``
extra), 503 (retryable) when Redis is away. Spans arrive again when an exporter retries:
each span id is published once (a bounded memory of recent ones). Steps of one episode
are numbered in turn under a per-episode lock, in span start order within an export.
"""

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter
from pydantic import ValidationError

from monitor.api.agent_steps import (
    EpisodeLocks,
    accepted_step,
    ensure_episode,
    publish,
    tool_agent_spec,
)
from monitor.api.errors import ApiError
from monitor.api.state import METRICS
from monitor.integrations.genai_steps import SpanStep, steps_from_spans
from monitor.integrations.otlp_traces import (
    BadExport,
    Decoded,
    ProtobufUnavailable,
    decode_json,
    decode_protobuf,
    export_response,
    status_body,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_EXPORT_BYTES = 8 * 1024 * 1024  # a full batch (512 spans) with message contents
INVALID_ARGUMENT = 3


@dataclass
class TraceIngest:
    """What the route remembers between exports: locks, recent span ids."""

    spans: Counter
    locks: EpisodeLocks = field(default_factory=EpisodeLocks)
    recent: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    limit: int = 100_000

    def seen(self, episode_id: str, span_id: str) -> bool:
        return (episode_id, span_id) in self.recent

    def mark(self, episode_id: str, span_id: str) -> None:
        self.recent[(episode_id, span_id)] = None
        while len(self.recent) > self.limit:
            self.recent.popitem(last=False)


INGEST = web.AppKey("otlp_ingest", TraceIngest)


def setup(app: web.Application) -> None:
    spans = Counter(
        "runaway_otlp_spans_total",
        "Spans received on /v1/traces, by what became of them",
        ("outcome",),
        registry=app[METRICS].registry,
    )
    for outcome in ("step", "ignored", "rejected", "duplicate"):
        spans.labels(outcome)
    app[INGEST] = TraceIngest(spans)
    app.router.add_post("/v1/traces", post_traces)


def _reply(status: int, body: bytes, protobuf: bool) -> web.Response:
    return web.Response(status=status, body=body, content_type=PROTOBUF if protobuf else JSON)


async def _read(request: web.Request) -> bytes:
    """The body, up to MAX_EXPORT_BYTES (the app's smaller limit is for step bodies)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_EXPORT_BYTES:
            raise ApiError(413, "body_too_large", f"exports are limited to {MAX_EXPORT_BYTES} B")
        chunks.append(chunk)
    return b"".join(chunks)


async def post_traces(request: web.Request) -> web.Response:
    protobuf = request.content_type == PROTOBUF
    if not protobuf and request.content_type != JSON:
        message = f"Content-Type must be {PROTOBUF} or {JSON}"
        return _reply(415, status_body(INVALID_ARGUMENT, message, protobuf=False), False)
    raw = await _read(request)
    try:
        decoded = decode_protobuf(raw) if protobuf else decode_json(raw)
    except ProtobufUnavailable as exc:
        return _reply(415, status_body(INVALID_ARGUMENT, str(exc), protobuf=True), True)
    except BadExport as exc:
        return _reply(400, status_body(INVALID_ARGUMENT, str(exc), protobuf=protobuf), protobuf)
    rejected, reasons = await _ingest(request.app, decoded)
    body = export_response(rejected, "; ".join(reasons)[:500], protobuf=protobuf)
    return _reply(200, body, protobuf)


async def _ingest(app: web.Application, decoded: Decoded) -> tuple[int, list[str]]:
    ingest = app[INGEST]
    steps, bad, reasons = steps_from_spans(decoded.spans)
    rejected, reasons = decoded.rejected + bad, decoded.reasons + reasons
    ingest.spans.labels("ignored").inc(len(decoded.spans) - len(steps) - bad)
    for episode_id, group in itertools.groupby(steps, key=lambda s: s.episode_id):
        async with ingest.locks(episode_id):
            more = await _ingest_episode(app, episode_id, list(group))
        rejected += len(more)
        reasons += [r for r in more if r not in reasons]
    ingest.spans.labels("rejected").inc(rejected)
    return rejected, reasons[:5]


async def _ingest_episode(
    app: web.Application, episode_id: str, steps: list[SpanStep]
) -> list[str]:
    """Publish the new steps of one episode in order; the reasons of those rejected."""
    ingest, failed = app[INGEST], []
    fresh = [s for s in steps if not ingest.seen(episode_id, s.span_id)]
    ingest.spans.labels("duplicate").inc(len(steps) - len(fresh))
    if not fresh:
        return failed
    model = next((s.model for s in fresh if s.model), None)
    spec = await ensure_episode(app, tool_agent_spec(episode_id, "otlp", model))
    step = await accepted_step(app, episode_id)
    for s in fresh:
        try:
            await publish(app, spec, step + 1, s.tool_calls, s.text)
        except ValidationError as exc:
            failed.append(f"span {s.span_id}: {exc.errors()[0]['msg']}")
            continue
        except ApiError as exc:
            if exc.code not in ("duplicate_step", "step_gap"):
                failed.append(f"span {s.span_id}: {exc.message}")
                continue
            step = await accepted_step(app, episode_id)  # someone else stepped it: go on
            await publish(app, spec, step + 1, s.tool_calls, s.text)
        step += 1
        ingest.mark(episode_id, s.span_id)
        ingest.spans.labels("step").inc()
    return failed
