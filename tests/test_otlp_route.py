"""``POST /v1/traces`` on a real sidecar (real Redis): GenAI spans become steps of
episodes, bad input follows the OTLP/HTTP spec, a retried export publishes nothing twice,
the bearer auth applies, and protobuf and JSON bodies are both served."""

import gzip

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import SecretStr

from monitor.integrations.otlp_traces import decode_json
from schemas.wire import decode
from tests.api_helpers import api_client
from tests.otlp_helpers import TOOL, TRACE, export, span

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def chat(text: str) -> dict:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
        ).decode(),
    }


def as_protobuf(body: bytes) -> bytes:
    """The same export as a protobuf ExportTraceServiceRequest (the real message)."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for s in decode_json(body).spans:
        pb = ss.spans.add(
            trace_id=bytes.fromhex(s.trace_id),
            span_id=bytes.fromhex(s.span_id),
            name=s.name,
            start_time_unix_nano=s.start_ns,
            end_time_unix_nano=s.end_ns,
        )
        for k, v in s.attributes.items():
            kv = pb.attributes.add(key=k)
            kv.value.string_value = str(v)
    return req.SerializeToString()


async def _steps(redis, settings, episode_id: str) -> list:
    k = settings.keys
    out = []
    for shard in range(settings.shards):
        for _, fields in await redis.xrange(k.steps(shard)):
            ev = decode(fields)
            if ev.kind == "step" and ev.episode_id == episode_id:
                out.append(ev)
    return out


async def test_spans_become_steps_once_in_both_encodings(settings, redis):
    first = export(
        span("00000000000000a2", 20, chat("thinking")), span("00000000000000a1", 10, TOOL)
    )
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/traces", data=first, headers=JSON)
        assert resp.status == 200 and await resp.json() == {}
        again = await client.post("/v1/traces", data=as_protobuf(first), headers=PB)  # a retry
        assert again.status == 200 and again.content_type == "application/x-protobuf"
        assert await again.read() == b""  # full success
        later = export(span("00000000000000a3", 30, TOOL))
        resp = await client.post("/v1/traces", data=as_protobuf(later), headers=PB)
        assert resp.status == 200
        episode = await (await client.get("/v1/episodes/conv-1")).json()
        metrics = await (await client.get("/metrics")).text()
    steps = await _steps(redis, settings, "conv-1")
    assert [s.step for s in steps] == [1, 2, 3]  # start order; the retry published nothing
    assert steps[0].tool_calls[0].name == "search" and steps[0].tool_calls[0].result == "found"
    assert steps[0].observation == {} and steps[1].text == "thinking"
    assert episode["accepted_step"] == 3 and episode["source"] == "otlp"
    assert 'runaway_otlp_spans_total{outcome="step"} 3.0' in metrics
    assert 'runaway_otlp_spans_total{outcome="duplicate"} 2.0' in metrics


async def test_bad_spans_are_a_partial_success_and_the_good_ones_land(settings, redis):
    no_name = {"gen_ai.operation.name": "execute_tool", "gen_ai.conversation.id": "conv-2"}
    good = {**TOOL, "gen_ai.conversation.id": "conv-2"}
    body = export(
        span("bad", 1, good),
        span("00000000000000b2", 2, no_name),
        span("00000000000000b3", 3, good),
    )
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/traces", data=body, headers=JSON)
        assert resp.status == 200
        partial = (await resp.json())["partialSuccess"]
        pb = await client.post(
            "/v1/traces", data=as_protobuf(export(span("00000000000000b4", 4, no_name))), headers=PB
        )
        parsed = ExportTraceServiceResponse()
        parsed.ParseFromString(await pb.read())
    assert partial["rejectedSpans"] == 2
    assert "spanId" in partial["errorMessage"] and "gen_ai.tool.name" in partial["errorMessage"]
    assert parsed.partial_success.rejected_spans == 1
    assert [s.step for s in await _steps(redis, settings, "conv-2")] == [1]


async def test_undecodable_bodies_are_400_with_a_reason_in_the_request_encoding(settings, redis):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/traces", data=b"{oops", headers=JSON)
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["message"]
        resp = await client.post("/v1/traces", data=b"\xff\xfe\xfd garbage", headers=PB)
        assert resp.status == 400 and resp.content_type == "application/x-protobuf"
        assert b"protobuf ExportTraceServiceRequest" in await resp.read()
        resp = await client.post("/v1/traces", data=b"x", headers={"Content-Type": "text/plain"})
        assert resp.status == 415 and "application/x-protobuf" in (await resp.json())["message"]
        ok = await client.post("/v1/traces", data=b'{"resourceSpans": []}', headers=JSON)
        assert ok.status == 200


async def test_the_bearer_token_guards_the_route(settings, redis):
    token = "s3cret-token-for-otlp"
    body = export(span("00000000000000c1", 1, TOOL))
    async with api_client(settings, detector=False, api_token=SecretStr(token)) as client:
        assert (await client.post("/v1/traces", data=body, headers=JSON)).status == 401
        wrong = {**JSON, "Authorization": "Bearer nope"}
        assert (await client.post("/v1/traces", data=body, headers=wrong)).status == 403
        right = {**JSON, "Authorization": f"Bearer {token}"}
        assert (await client.post("/v1/traces", data=body, headers=right)).status == 200


async def test_without_a_conversation_id_the_trace_id_keys_the_episode(settings, redis):
    tool = {k: v for k, v in TOOL.items() if k != "gen_ai.conversation.id"}
    async with api_client(settings, detector=False) as client:
        resp = await client.post(
            "/v1/traces", data=export(span("00000000000000d1", 1, tool)), headers=JSON
        )
        assert resp.status == 200
        assert (await client.get(f"/v1/episodes/{TRACE}")).status == 200


async def test_a_gzip_export_is_accepted(settings, redis):
    # OTEL_EXPORTER_OTLP_COMPRESSION=gzip: the exporters' one compression
    body = gzip.compress(as_protobuf(export(span("00000000000000e1", 1, TOOL))))
    async with api_client(settings, detector=False) as client:
        resp = await client.post(
            "/v1/traces", data=body, headers={**PB, "Content-Encoding": "gzip"}
        )
        assert resp.status == 200, await resp.text()
    assert [s.step for s in await _steps(redis, settings, "conv-1")] == [1]
