"""OTLP trace decoding and the GenAI span -> step mapping, as pure functions.

Protobuf bodies are made with the real ``opentelemetry-proto`` messages; JSON bodies
follow the OTLP/JSON mapping (hex ids, string 64-bit integers, camel case)."""

import json
import subprocess
import sys

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from monitor.integrations.genai_steps import episode_id_for, steps_from_spans
from monitor.integrations.otlp_traces import (
    BadExport,
    decode_json,
    decode_protobuf,
    export_response,
    status_body,
)
from tests.otlp_helpers import TOOL, TRACE, export, span


def test_json_genai_tool_and_chat_spans_become_ordered_steps():
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "done"}]}]
        ).decode(),
    }
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "a",
        "gen_ai.conversation.id": "conv-1",
    }
    http = {"http.method": "POST"}
    body = export(
        span("00000000000000a3", 30, chat),
        span("00000000000000a1", 10, TOOL),
        span("00000000000000a0", 5, agent),
        span("00000000000000a9", 1, http),
    )
    decoded = decode_json(body)
    assert decoded.rejected == 0 and len(decoded.spans) == 4
    assert decoded.spans[0].resource == {"service.name": "agent"}
    steps, rejected, _ = steps_from_spans(decoded.spans)
    assert rejected == 0
    assert [s.span_id for s in steps] == ["00000000000000a1", "00000000000000a3"]
    assert {s.episode_id for s in steps} == {"conv-1"}  # the chat span got it from its trace
    assert steps[0].tool_calls == [
        {"name": "search", "arguments": {"q": "x"}, "result": "found", "id": "c1"}
    ]
    assert steps[1].text == "done" and steps[1].tool_calls == [] and steps[1].agent == "a"


def test_openinference_spans_map_too():
    tool = {
        "openinference.span.kind": "TOOL",
        "tool.name": "check",
        "session.id": "s-1",
        "input.value": '{"item": "w"}',
        "output.value": "3 in stock",
        "tool.parameters": '{"type": "object"}',
    }
    llm = {
        "openinference.span.kind": "LLM",
        "session.id": "s-1",
        "llm.model_name": "m",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "We have 3.",
    }
    requested_only = {
        "openinference.span.kind": "LLM",
        "session.id": "s-1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "c",
    }
    decoded = decode_json(
        export(
            span("0000000000000001", 1, requested_only),
            span("0000000000000002", 2, tool),
            span("0000000000000003", 3, llm),
        )
    )
    steps, _, _ = steps_from_spans(decoded.spans)
    assert [(s.tool_calls, s.text) for s in steps] == [
        ([{"name": "check", "arguments": {"item": "w"}, "result": "3 in stock", "id": None}], None),
        ([], "We have 3."),
    ]
    assert steps[1].model == "m"


def test_without_a_conversation_the_trace_is_the_episode():
    tool = {k: v for k, v in TOOL.items() if k != "gen_ai.conversation.id"}
    steps, _, _ = steps_from_spans(decode_json(export(span("00000000000000b1", 1, tool))).spans)
    assert steps[0].episode_id == TRACE


def test_a_conversation_id_that_is_not_an_episode_id_is_digested_stably():
    key = "user@example.com / chat #7"
    assert episode_id_for(key) == episode_id_for(key)
    assert episode_id_for(key).startswith("otel-") and episode_id_for("ok-id_1") == "ok-id_1"


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"resourceSpans": {"a": 1}}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": 7}]}]}', "spans must be a list"),
    ],
)
def test_undecodable_json_is_a_bad_export_with_a_reason(body, reason):
    with pytest.raises(BadExport, match=reason):
        decode_json(body)


def test_bad_spans_are_counted_and_the_good_ones_kept():
    bad_id = span("xyz", 1, TOOL)
    zero_trace = span("00000000000000c2", 2, TOOL, trace="0" * 32)
    no_tool_name = span("00000000000000c3", 3, {"gen_ai.operation.name": "execute_tool"})
    good = span("00000000000000c4", 4, TOOL)
    decoded = decode_json(export(bad_id, zero_trace, good, no_tool_name))
    assert decoded.rejected == 2 and len(decoded.spans) == 2
    assert any("spanId" in r for r in decoded.reasons)
    steps, rejected, reasons = steps_from_spans(decoded.spans)
    assert rejected == 1 and "gen_ai.tool.name" in reasons[0]
    assert [s.span_id for s in steps] == ["00000000000000c4"]


def _pb_export(spans: list[tuple[bytes, bytes, dict[str, str]]]) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for trace_id, span_id, attrs in spans:
        s = ss.spans.add(trace_id=trace_id, span_id=span_id, name="x", start_time_unix_nano=5)
        s.attributes.extend(
            KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()
        )
    return req.SerializeToString()


def test_protobuf_decodes_like_json_and_rejects_short_ids():
    good = (bytes.fromhex(TRACE), bytes.fromhex("00000000000000d1"), TOOL)
    short = (bytes.fromhex(TRACE), b"\x01\x02", TOOL)
    decoded = decode_protobuf(_pb_export([good, short]))
    assert decoded.rejected == 1 and decoded.spans[0].trace_id == TRACE
    steps, _, _ = steps_from_spans(decoded.spans)
    assert steps[0].tool_calls[0]["name"] == "search" and steps[0].episode_id == "conv-1"
    with pytest.raises(BadExport):
        decode_protobuf(b"\xff\xff\xff\xff garbage")


def test_responses_parse_with_the_real_protobuf_messages():
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(export_response(3, "span x: bad", protobuf=True))
    assert resp.partial_success.rejected_spans == 3
    assert resp.partial_success.error_message == "span x: bad"
    assert export_response(0, "", protobuf=True) == b""
    assert orjson.loads(export_response(2, "m", protobuf=False)) == {
        "partialSuccess": {"rejectedSpans": 2, "errorMessage": "m"}
    }
    assert orjson.loads(status_body(3, "bad", protobuf=False)) == {"code": 3, "message": "bad"}
    raw = status_body(3, "bad", protobuf=True)
    assert raw[:2] == b"\x08\x03" and raw.endswith(b"bad")


CORE = (
    "import sys, monitor.api.app, monitor.integrations.otlp_traces, "
    "monitor.integrations.genai_steps, monitor.integrations.litellm_guardrail; "
)
HEAVY = (
    "opentelemetry.proto",
    "opentelemetry.exporter",
    "google.protobuf",
    "agents",
    "litellm",
    "openinference",
)


def test_importing_the_core_and_the_routes_never_imports_the_extras():
    # redis-py itself imports opentelemetry.sdk.metrics when it is installed: not ours
    code = CORE + (
        f"bad = [m for m in sys.modules if m.startswith({HEAVY!r})]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_without_the_otel_extra_protobuf_says_what_to_install():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('opentelemetry', 'google'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        + CORE
        + "\nfrom monitor.integrations.otlp_traces import decode_protobuf, "
        "ProtobufUnavailable\n"
        "try:\n    decode_protobuf(b'')\nexcept ProtobufUnavailable as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "runaway-monitor[otel]" in out.stdout and "http/json" in out.stdout


# any JSON at all: a BadExport or spans, never another exception ---------------------------

JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "resourceSpans",
        "scopeSpans",
        "spans",
        "attributes",
        "key",
        "value",
        "stringValue",
        "intValue",
        "arrayValue",
        "kvlistValue",
        "values",
        "traceId",
        "spanId",
        "gen_ai.operation.name",
        "execute_tool",
    ]
)
OTLPISH = st.recursive(
    JSONS,
    lambda inner: st.dictionaries(KEYS, inner, max_size=4) | st.lists(inner, max_size=3),
    max_leaves=40,
)


@examples(max_examples=100, deadline=None)
@given(OTLPISH)
def test_any_json_body_is_a_bad_export_or_spans(body):
    try:
        decoded = decode_json(json.dumps(body).encode())
    except BadExport:
        return
    steps_from_spans(decoded.spans)  # never raises either


@examples(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["role", "content", "tool_calls", "tool_call_id", "function", "name"]),
            OTLPISH,
            max_size=4,
        ),
        max_size=6,
    )
)
def test_any_conversation_maps_without_error(messages):
    from monitor.integrations.litellm_guardrail import (
        GuardrailRequest,
        assistant_turns,
        episode_key,
    )

    assistant_turns(messages)
    episode_key(GuardrailRequest(structured_messages=messages, litellm_trace_id="t"), {})


def test_the_monitors_own_spans_are_ignored():
    """Its GenAI export (scope runaway-monitor) pointed back at the sidecar feeds nothing."""
    body = orjson.loads(export(span("00000000000000f1", 1, TOOL)))
    body["resourceSpans"][0]["scopeSpans"][0]["scope"] = {"name": "runaway-monitor"}
    decoded = decode_json(orjson.dumps(body))
    assert decoded.spans[0].scope == "runaway-monitor"
    assert steps_from_spans(decoded.spans) == ([], 0, [])
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.scope.name = "runaway-monitor"
    s = ss.spans.add(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex("00000000000000f2"))
    s.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in TOOL.items())
    assert steps_from_spans(decode_protobuf(req.SerializeToString()).spans) == ([], 0, [])
