"""GenAI spans (OpenTelemetry GenAI conventions, or OpenInference) as monitor steps.

Pure functions over :class:`~monitor.integrations.otlp_traces.SpanRecord`. What becomes
a step:

- a tool span (``gen_ai.operation.name = execute_tool``, or OpenInference kind ``TOOL``):
  one step whose ``tool_calls`` is that call (name, arguments, result, id);
- a chat span (``chat``, ``text_completion``, ``generate_content``, or kind ``LLM``) that
  produced text: one step with that ``text``. The tool calls a chat span only requests
  are left to the tool spans that execute them, so a call is counted once;
- agent spans (``invoke_agent``, ``create_agent``, kind ``AGENT``) are containers: they
  give their trace a conversation id and an agent name, never a step.

Every other span (HTTP, database, the framework's own) is ignored, not rejected, and so
are the monitor's own (scope ``runaway-monitor``: its GenAI export, pointed back at the
sidecar, must not feed its episodes again). The
episode is the span's ``gen_ai.conversation.id`` (OpenInference: ``session.id``), else
that of another span of its trace in the same export, else the trace id.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.integrations.otlp_traces import SpanRecord

CHAT_OPS = frozenset({"chat", "text_completion", "generate_content"})
AGENT_OPS = frozenset({"invoke_agent", "create_agent"})
CONVERSATION_KEYS = ("gen_ai.conversation.id", "session.id")
OWN_SCOPE = "runaway-monitor"  # the tracer of monitor.integrations.otel
EPISODE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
MAX_TEXT = 100_000


class BadSpan(ValueError):
    """A GenAI span the monitor cannot use (counted as a rejected span)."""


@dataclass(frozen=True, slots=True)
class SpanStep:
    """One step taken from one span, ordered by ``start_ns`` within its episode."""

    episode_id: str
    span_id: str
    start_ns: int
    tool_calls: list[dict[str, Any]]
    text: str | None
    agent: str | None
    model: str | None


def kind_of(span: SpanRecord) -> str | None:
    """``tool``, ``chat``, ``agent`` or None (not a GenAI span, or the monitor's own)."""
    if span.scope == OWN_SCOPE:
        return None
    a = span.attributes
    op = a.get("gen_ai.operation.name")
    op = op if isinstance(op, str) else None
    oi = str(a.get("openinference.span.kind") or "").upper()
    if op == "execute_tool" or oi == "TOOL":
        return "tool"
    if op in CHAT_OPS or oi == "LLM":
        return "chat"
    if op in AGENT_OPS or oi == "AGENT":
        return "agent"
    return None


def episode_id_for(key: str) -> str:
    """A conversation id as an episode id: itself when it fits, else a stable digest."""
    if EPISODE_ID.match(key):
        return key
    return "otel-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _conversation(span: SpanRecord) -> str | None:
    for k in CONVERSATION_KEYS:
        v = span.attributes.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def tool_call(span: SpanRecord) -> dict[str, Any]:
    a = span.attributes
    name = a.get("gen_ai.tool.name") or a.get("tool.name")
    if not isinstance(name, str) or not name:
        raise BadSpan("a tool span needs gen_ai.tool.name (or tool.name)")
    # input.value holds the arguments (tool.parameters is the schema)
    args = a.get("gen_ai.tool.call.arguments", a.get("input.value"))
    args = _json_or_text(args) if args is not None else {}
    if not isinstance(args, dict | str):
        args = orjson.dumps(args).decode()
    result = a.get("gen_ai.tool.call.result", a.get("output.value"))
    call_id = a.get("gen_ai.tool.call.id") or a.get("tool_call.id")
    return {
        "name": name[:128],
        "arguments": args,
        "result": _json_or_text(result) if result is not None else None,
        "id": str(call_id)[:128] if call_id else None,
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _parts_text(messages: Any) -> str | None:
    """The text parts of ``gen_ai.output.messages`` ([{role, parts: [{type, content}]}])."""
    if not isinstance(messages, list):
        return None
    texts = [
        str(p.get("content"))
        for m in messages
        if isinstance(m, dict)
        for p in _list(m.get("parts"))
        if isinstance(p, dict) and p.get("type") == "text" and p.get("content")
    ]
    return "\n".join(texts) or None


def chat_text(span: SpanRecord) -> str | None:
    """What the model said, from whichever convention the instrumentation follows."""
    a = span.attributes
    text = _parts_text(_json_or_text(a.get("gen_ai.output.messages")))
    if text is None:
        parts = [
            str(v)
            for k, v in sorted(a.items())
            if k.startswith("llm.output_messages.") and k.endswith(".message.content") and v
        ]
        text = "\n".join(parts) or None
    if text is None:
        completion = a.get("gen_ai.completion.0.content")
        text = str(completion) if completion else None
    return text[:MAX_TEXT] if text else None


def _step(span: SpanRecord, kind: str, episode_id: str, agent: str | None) -> SpanStep | None:
    a = span.attributes
    model = (
        a.get("gen_ai.response.model") or a.get("gen_ai.request.model") or a.get("llm.model_name")
    )
    if kind == "tool":
        calls, text = [tool_call(span)], None
    else:
        calls, text = [], chat_text(span)
        if text is None:
            return None  # only requested tool calls: their tool spans carry them
    agent = a.get("gen_ai.agent.name") or a.get("agent.name") or agent
    return SpanStep(
        episode_id,
        span.span_id,
        span.start_ns,
        calls,
        text,
        str(agent)[:64] if agent else None,
        str(model)[:64] if model else None,
    )


def steps_from_spans(spans: list[SpanRecord]) -> tuple[list[SpanStep], int, list[str]]:
    """The steps of an export, in start order, with the count and reasons of rejections."""
    conversations: dict[str, str] = {}
    agents: dict[str, str] = {}
    for span in spans:
        if kind_of(span) is None:
            continue
        conv = _conversation(span)
        if conv:
            conversations.setdefault(span.trace_id, conv)
        name = span.attributes.get("gen_ai.agent.name") or span.attributes.get("agent.name")
        if kind_of(span) == "agent" and isinstance(name, str):
            agents.setdefault(span.trace_id, name)
    steps: list[SpanStep] = []
    rejected, reasons = 0, []
    for span in spans:
        kind = kind_of(span)
        if kind not in ("tool", "chat"):
            continue
        key = _conversation(span) or conversations.get(span.trace_id) or span.trace_id
        try:
            step = _step(span, kind, episode_id_for(key), agents.get(span.trace_id))
        except BadSpan as exc:
            rejected += 1
            if str(exc) not in reasons:
                reasons.append(str(exc))
            continue
        if step is not None:
            steps.append(step)
    steps.sort(key=lambda s: (s.episode_id, s.start_ns, s.span_id))
    return steps, rejected, reasons
