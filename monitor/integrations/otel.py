"""OpenTelemetry GenAI export: every step and verdict the sidecar sees, as OTLP spans.

Needs the ``otel`` extra (``pip install 'runaway-monitor[otel]'``). Off unless an OTLP
endpoint is set in the standard variables (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``); the OTLP/HTTP exporter reads the rest of them itself
(``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``).

One trace per step, following the GenAI semantic conventions: an ``invoke_agent`` span
(``gen_ai.conversation.id`` and ``session.id`` = the episode id, so Langfuse and Phoenix
group an episode's steps into one session) with a ``chat`` child for the model's answer
and an ``execute_tool {name}`` child per tool call; the verdict is a
``gen_ai.evaluation.result`` event on the ``invoke_agent`` span
(``gen_ai.evaluation.name`` = ``runaway-monitor``, score value = the Runaway Index,
label = the flags, explanation = the reason). No prompt, answer or tool argument is
exported: the semantic conventions make content opt-in and the monitor never repeats it.

The live feed hands each batch of events over after the batch's verdicts have woken the
waiting requests; the spans are built on a thread of the exporter's own (the SDK's
attribute checks cost about 0.2 ms a step, too much for the event loop) and a batch span
processor exports them from another. Telemetry is never on a verdict's path, and a slow
or absent collector loses spans (``dropped`` counts them once the queue is full), not
verdicts.
"""

import logging
import queue
import threading
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "runaway-monitor"
SERVICE_NAME = "runaway-monitor"


def _resource() -> Resource:
    """``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` when set, else runaway-monitor."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


class _Labels(NamedTuple):
    """An episode's names, queued like the events (only the span thread reads or writes)."""

    episode_id: str
    environment: str | None
    model: str | None
    kind: str = "episode_labels"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class GenAIExporter:
    """Turns feed events (steps, verdicts) into GenAI spans on its own tracer provider.

    The provider is not made global: an application that embeds the sidecar keeps its
    own. ``max_pending`` bounds the steps held while their verdicts are awaited.
    """

    def __init__(
        self, processor: SpanProcessor, *, max_pending: int = 10_000, max_batches: int = 1_000
    ) -> None:
        self.provider = TracerProvider(resource=_resource())
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("runaway-monitor")
        self.max_pending = max_pending
        self.pending: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self.episodes: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self.dropped = 0  # events not exported because the queue was full
        self._queue: queue.Queue[list[Any] | None] = queue.Queue(maxsize=max_batches)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls) -> "GenAIExporter":
        """OTLP/HTTP (protobuf) behind a batch span processor, configured by ``OTEL_*``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(BatchSpanProcessor(OTLPSpanExporter()))

    # feed events ------------------------------------------------------------------------
    def on_events(self, events: list[Any]) -> None:
        """Queue a batch for the span thread (O(1): called on the event loop)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="otel-genai", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            self.dropped += len(events)

    def remember(self, episode_id: str, environment: str | None, labels: dict[str, str]) -> None:
        """An episode registered over the API: its environment and model name its spans
        (the feed may not see its EpisodeStarted, e.g. right after a restart)."""
        self.on_events([_Labels(episode_id, environment, labels.get("model"))])

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                for ev in batch:
                    try:
                        self.on_event(ev)
                    except Exception:  # one odd event must not stop the others' telemetry
                        log.exception("telemetry of a %s event failed", getattr(ev, "kind", "?"))
            finally:
                self._queue.task_done()

    def on_event(self, ev: Any) -> None:
        if ev.kind == "episode_started":
            self._remember(ev.episode_id, ev.spec.environment, ev.spec.labels.get("model"))
        elif ev.kind == "episode_labels":
            self._remember(ev.episode_id, ev.environment, ev.model)
        elif ev.kind == "step":
            self.pending[(ev.episode_id, ev.step)] = ev
            while len(self.pending) > self.max_pending:
                self.pending.popitem(last=False)
        elif ev.kind == "verdict":
            self.export(self.pending.pop((ev.episode_id, ev.step), None), ev)

    def _remember(self, episode_id: str, environment: str | None, model: str | None) -> None:
        self.episodes[episode_id] = (environment, model)
        while len(self.episodes) > self.max_pending:
            self.episodes.popitem(last=False)

    # spans ------------------------------------------------------------------------------
    def export(self, step: Any, verdict: Any) -> None:
        """The spans of one step and its verdict (``step`` None: the verdict alone)."""
        episode_id = verdict.episode_id
        environment, model = self.episodes.get(episode_id, (None, None))
        start = _ns(step.ts if step is not None else verdict.step_ts)
        end = max(start, _ns(verdict.ts))
        agent = environment or "agent"
        common = {"gen_ai.conversation.id": episode_id, "session.id": episode_id}
        root = self.tracer.start_span(
            f"invoke_agent {agent}",
            start_time=start,
            attributes={
                **common,
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "runaway.step": verdict.step,
            },
        )
        context = trace.set_span_in_context(root)
        if step is not None:
            self._children(step, model, common, context, start, end)
        root.add_event(EVALUATION_EVENT, _evaluation(verdict), timestamp=end)
        root.end(end_time=end)

    def _children(
        self,
        step: Any,
        model: str | None,
        common: dict[str, Any],
        context: Any,
        start: int,
        end: int,
    ) -> None:
        usage = step.usage or {}
        if step.text or step.action:
            attrs: dict[str, Any] = {**common, "gen_ai.operation.name": "chat"}
            if model:
                attrs["gen_ai.request.model"] = model
            for ours, theirs in (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
            ):
                if ours in usage:
                    attrs[f"gen_ai.usage.{theirs}"] = int(usage[ours])
            chat_end = min(end, start + _ns(usage.get("latency_s", 0.0)))
            name = f"chat {model}" if model else "chat"
            span = self.tracer.start_span(name, context, start_time=start, attributes=attrs)
            span.end(end_time=chat_end)
        for call in step.tool_calls:
            attrs = {
                **common,
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.type": "function",
            }
            if call.id:
                attrs["gen_ai.tool.call.id"] = call.id
            span = self.tracer.start_span(
                f"execute_tool {call.name}", context, start_time=start, attributes=attrs
            )
            span.end(end_time=start)

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queued events are spans and the spans are exported (blocking)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        left_ms = max(0, int((deadline - time.monotonic()) * 1000))
        return not self._queue.unfinished_tasks and self.provider.force_flush(left_ms)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Build what is queued, flush, stop both threads (blocking: call from a thread)."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout_s)
                self._thread.join(timeout_s)
            except queue.Full:
                log.warning("telemetry queue still full at shutdown: its spans are lost")
        self.provider.shutdown()


def _evaluation(verdict: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.evaluation.name": EVALUATION_NAME,
        "gen_ai.evaluation.score.value": float(verdict.runaway_index),
        "gen_ai.evaluation.score.label": ",".join(verdict.flags) or "none",
        "runaway.verdict": verdict.verdict,
    }
    if verdict.reason:
        attrs["gen_ai.evaluation.explanation"] = verdict.reason
    if verdict.cause:
        attrs["runaway.cause"] = verdict.cause
    if verdict.savepoint_step is not None:
        attrs["runaway.savepoint_step"] = verdict.savepoint_step
    return attrs
