"""The OpenTelemetry GenAI export: the real opentelemetry-sdk (an in-memory exporter)
behind the real sidecar and detector, and one export over OTLP/HTTP to a real receiver
on loopback configured by the standard OTEL_EXPORTER_OTLP_* variables."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.api import create_app
from monitor.api.app import TELEMETRY
from monitor.integrations.guard import TOOL_AGENT
from monitor.integrations.otel import GenAIExporter
from schemas.events import StepEvent, ToolCall, Verdict
from schemas.settings import Settings
from tests.api_helpers import mo_step, register, wait_ready
from tests.fakes.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.usefixtures("redis")  # the real sidecar's keys are removed after

OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    receiver = await OtlpReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.close()


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def sidecar(settings: Settings, telemetry: Any = None) -> AsyncIterator[TestClient]:
    app = create_app(
        settings.model_copy(update={"step_timeout_s": 10}), with_detector=True, telemetry=telemetry
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_ready(client)  # the feed reads from its start: steps before it are unseen
        yield client


async def until(check: Callable[[], Any], what: str, limit_s: float = 15) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}")


async def _play(client: TestClient, steps: int) -> tuple[str, list[dict[str, Any]]]:
    body = {"environment": "multiobjective-homeostasis", "labels": {"model": "gpt-test"}}
    episode = await register(client, body)
    verdicts = []
    for n in range(1, steps + 1):
        resp = await client.post(f"/v1/episodes/{episode}/steps", json=mo_step(n))
        assert resp.status == 200, await resp.text()
        verdicts.append(await resp.json())
    return episode, verdicts


async def test_each_step_is_a_genai_trace_with_its_verdict_as_evaluation_event(
    settings: Settings,
) -> None:
    memory = InMemorySpanExporter()
    exporter = GenAIExporter(SimpleSpanProcessor(memory))
    async with sidecar(settings, exporter) as client:
        episode, verdicts = await _play(client, 3)

        def agents() -> list[Any]:
            spans = [
                s
                for s in memory.get_finished_spans()
                if s.attributes.get("gen_ai.conversation.id") == episode
                and s.attributes.get("gen_ai.operation.name") == "invoke_agent"
            ]
            return spans if len(spans) == 3 else []

        roots = sorted(
            await until(agents, "3 invoke_agent spans"), key=lambda s: s.attributes["runaway.step"]
        )
    for root, answer in zip(roots, verdicts, strict=True):
        assert root.name == "invoke_agent multiobjective-homeostasis"
        assert root.attributes["session.id"] == episode
        [event] = root.events
        assert event.name == "gen_ai.evaluation.result"
        assert event.attributes["gen_ai.evaluation.name"] == "runaway-monitor"
        assert event.attributes["gen_ai.evaluation.score.value"] == answer["runaway_index"]
        assert event.attributes["gen_ai.evaluation.score.label"] == (
            ",".join(answer["flags"]) or "none"
        )
        assert event.attributes["runaway.verdict"] == answer["verdict"]
        [chat] = [
            s
            for s in memory.get_finished_spans()
            if s.parent is not None and s.parent.span_id == root.context.span_id
        ]
        assert chat.name == "chat gpt-test" and chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "gpt-test"
        assert chat.context.trace_id == root.context.trace_id
    assert len({r.context.trace_id for r in roots}) == 3  # one trace per step
    exporter.shutdown()


async def test_a_tool_loop_exports_execute_tool_spans_and_the_block_reason(
    settings: Settings,
) -> None:
    memory = InMemorySpanExporter()
    exporter = GenAIExporter(SimpleSpanProcessor(memory))
    call = {"name": "search", "arguments": {"q": "fish"}}
    async with sidecar(settings, exporter) as client:
        episode = await register(client, {**TOOL_AGENT, "labels": {"model": "gpt-test"}})
        answers = []
        for n in (1, 2, 3):
            body = {"step": n, "tool_calls": [{**call, "id": f"call_{n}"}]}
            resp = await client.post(f"/v1/episodes/{episode}/steps", json=body)
            answers.append(await resp.json())
        assert answers[2]["verdict"] == "block"

        def third() -> list[Any]:
            return [
                s
                for s in memory.get_finished_spans()
                if s.attributes.get("gen_ai.conversation.id") == episode
                and s.attributes.get("runaway.step") == 3
            ]

        [root] = await until(third, "step 3's invoke_agent span")
    [event] = root.events
    assert event.attributes["runaway.verdict"] == "block"
    assert event.attributes["gen_ai.evaluation.explanation"] == answers[2]["reason"]
    assert "loop" in event.attributes["gen_ai.evaluation.score.label"].split(",")
    root_id = root.context.span_id
    [tool_span] = [
        s
        for s in memory.get_finished_spans()
        if s.parent is not None and s.parent.span_id == root_id
    ]
    assert tool_span.name == "execute_tool search"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_3"
    exporter.shutdown()


def test_tool_calls_become_execute_tool_spans_and_the_reason_the_explanation() -> None:
    memory = InMemorySpanExporter()
    exporter = GenAIExporter(SimpleSpanProcessor(memory))
    now = time.time()
    calls = [ToolCall(name="search", arguments={"q": "x"}, id=f"call_{i}") for i in (1, 2)]
    step = StepEvent(
        episode_id="ep-tools", step=4, observation={}, action={}, ts=now, tool_calls=calls
    )
    verdict = Verdict(
        episode_id="ep-tools",
        step=4,
        verdict="block",
        runaway_index=0.7,
        flags=["loop"],
        detections=["loop"],
        step_ts=now,
        ts=now + 0.01,
        cause="loop",
        reason="the same tool call 5 times",
    )
    exporter.on_events([step, verdict])  # built on the exporter's thread
    assert exporter.force_flush()
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {"invoke_agent agent", "execute_tool search"}
    tools = [s for s in memory.get_finished_spans() if s.name == "execute_tool search"]
    assert [t.attributes["gen_ai.tool.call.id"] for t in tools] == ["call_1", "call_2"]
    assert all(t.attributes["gen_ai.tool.name"] == "search" for t in tools)
    assert all(t.parent.span_id == spans["invoke_agent agent"].context.span_id for t in tools)
    assert "gen_ai.tool.call.arguments" not in tools[0].attributes  # content stays out
    [event] = spans["invoke_agent agent"].events
    assert event.attributes["gen_ai.evaluation.explanation"] == "the same tool call 5 times"
    assert event.attributes["gen_ai.evaluation.score.label"] == "loop"
    assert event.attributes["runaway.cause"] == "loop"
    exporter.shutdown()


async def test_off_unless_an_otlp_endpoint_is_configured(settings: Settings) -> None:
    assert Settings().otel_endpoint is None
    assert create_app(settings)[TELEMETRY] is None
    # nor when the endpoint is this sidecar (its /v1/traces would take the spans as steps)
    own = f"http://localhost:{settings.port}/v1/traces"
    assert create_app(settings.model_copy(update={"otel_endpoint": own}))[TELEMETRY] is None


async def test_export_over_otlp_http_to_a_real_receiver(
    settings: Settings, otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-test-key=secret-1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    configured = settings.model_copy(update={"otel_endpoint": Settings().otel_endpoint})
    assert configured.otel_endpoint == otlp_receiver.endpoint
    async with sidecar(configured) as client:
        assert type(client.app[TELEMETRY]).__name__ == "GenAIExporter"
        episode, verdicts = await _play(client, 2)

        def received() -> list[Any]:
            spans = [
                s
                for s in otlp_receiver.spans
                if s.attributes.get("gen_ai.conversation.id") == episode
            ]
            return spans if len(spans) == 4 else []  # 2 steps: invoke_agent + chat each

        spans = await until(received, "the episode's 4 spans at the receiver")
    roots = sorted(
        (s for s in spans if s.name.startswith("invoke_agent")),
        key=lambda s: s.attributes["runaway.step"],
    )
    assert [r.attributes["runaway.step"] for r in roots] == [1, 2]
    for root, answer in zip(roots, verdicts, strict=True):
        assert root.resource["service.name"] == "runaway-monitor"
        [(name, attrs)] = root.events
        assert name == "gen_ai.evaluation.result"
        assert attrs["gen_ai.evaluation.score.value"] == answer["runaway_index"]
    chats = [s for s in spans if s.name == "chat gpt-test"]
    assert {c.parent_span_id for c in chats} == {r.span_id for r in roots}
    assert otlp_receiver.headers[0]["x-test-key"] == "secret-1"


async def test_a_dead_collector_costs_no_verdict(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.serve_helpers import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    configured = settings.model_copy(update={"otel_endpoint": Settings().otel_endpoint})
    async with sidecar(configured) as client:
        _, verdicts = await _play(client, 5)
    assert [v["fail_mode"] for v in verdicts] == [None] * 5  # every one the detector's
