"""Zero-code monitoring end to end: a real OpenAI Agents SDK agent, instrumented with
OpenInference and the standard OTLP/HTTP (protobuf) exporter, runs a tool loop against the
scripted tool-calling model server and exports its traces to a real sidecar (Redis, an
in-process detector). Its episode, keyed by the run's session id, gets the ``loop``
flag; the verdicts show in the episode and the metrics, and go back out as
``gen_ai.evaluation.result`` events through the sidecar's OTel GenAI exporter, which
here also exports to the sidecar itself: its own spans must feed nothing."""

import asyncio
import os
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.api import create_app
from monitor.integrations.otel import GenAIExporter
from tests.api_helpers import wait_ready
from tests.fakes.model_server import text, tool_calls

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "otlp_openai_agents.py"
LOOPS = 6  # the same call again and again: the loop detector flags at 3 (DetectorConfig)
EPISODE = "inventory-7"


class CountingExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter, counting the spans the server took."""

    sent = 0

    def export(self, spans):
        result = super().export(spans)
        if result is SpanExportResult.SUCCESS:
            self.sent += len(spans)
        return result


async def _until(check, what: str, deadline_s: float = 30.0):
    deadline = asyncio.get_running_loop().time() + deadline_s
    while asyncio.get_running_loop().time() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saw {what}")


def _counter(metrics: str, name: str, *labels: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") and all(label in line for label in labels)
    )


async def _run_agent(client: TestClient, model_url: str) -> bytes:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": str(client.make_url("/v1/traces"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--base-url",
        model_url,
        "--conversation",
        EPISODE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, out.decode()[-3000:]
    return out


async def test_openai_agents_tool_loop_over_otlp_gets_the_loop_flag(
    settings, redis, fake_model_server
):
    for _ in range(LOOPS):
        fake_model_server.push(tool_calls(("check_inventory", {"item": "widget"})))
    fake_model_server.push(text("We have 3 widgets."))
    memory = InMemorySpanExporter()
    telemetry = GenAIExporter(SimpleSpanProcessor(memory))
    app = create_app(
        settings.model_copy(update={"step_timeout_s": 10}), with_detector=True, telemetry=telemetry
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_ready(client)  # the feed reads from its start
        back = CountingExporter(endpoint=str(client.make_url("/v1/traces")))
        telemetry.provider.add_span_processor(BatchSpanProcessor(back))  # to itself, too
        out = await _run_agent(client, fake_model_server.openai_base_url)
        assert b"We have 3 widgets." in out

        async def judged():
            body = await (await client.get(f"/v1/episodes/{EPISODE}")).json()
            return body if len(body.get("history", [])) == LOOPS + 1 else None

        episode = await _until(judged, "a verdict on every step")

        def evaluations():
            return [
                e
                for s in memory.get_finished_spans()
                if s.attributes.get("gen_ai.conversation.id") == EPISODE
                for e in s.events
                if e.name == "gen_ai.evaluation.result"
            ]

        async def all_exported():
            found = evaluations()
            return found if len(found) == LOOPS + 1 else None

        events = await _until(all_exported, "an evaluation event per verdict")
        await asyncio.to_thread(telemetry.provider.force_flush)  # the copy sent to itself
        metrics = await (await client.get("/metrics")).text()
        after = await (await client.get(f"/v1/episodes/{EPISODE}")).json()
    telemetry.shutdown()
    assert episode["source"] == "otlp" and episode["accepted_step"] == LOOPS + 1
    assert "loop" in episode["flags"] and any(f["flag"] == "loop" for f in episode["flips"])
    assert [h["verdict"] for h in episode["history"]][:2] == ["continue", "continue"]
    labels = [e.attributes["gen_ai.evaluation.score.label"] for e in events]
    assert any("loop" in label for label in labels)
    assert _counter(metrics, "runaway_episode_flips_total", 'flag="loop"') >= 1
    assert _counter(metrics, "runaway_otlp_spans_total", 'outcome="step"') == LOOPS + 1
    # the monitor's own GenAI spans came back to /v1/traces and fed nothing
    assert back.sent >= 2 * LOOPS  # its invoke_agent and execute_tool spans, at least
    assert _counter(metrics, "runaway_otlp_spans_total", 'outcome="ignored"') >= back.sent
    assert _counter(metrics, "runaway_otlp_spans_total", 'outcome="rejected"') == 0
    assert after["accepted_step"] == LOOPS + 1
