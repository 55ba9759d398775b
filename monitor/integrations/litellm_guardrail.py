"""The LiteLLM proxy's generic guardrail contract, as pure functions.

The proxy (``guardrail: generic_guardrail_api``, ``mode: pre_call``) posts the whole
conversation of every request before it calls the model; the monitor answers
``{action: NONE | BLOCKED | GUARDRAIL_INTERVENED, blocked_reason, texts}``. A request
becomes steps of one episode:

- each assistant turn of the conversation is one step: its text and its tool calls,
  with each call's result taken from the tool message that answers it. Step ``k`` is
  the ``k``-th assistant turn, so a request the proxy sends again gives no new step and
  a monitor that joins mid-conversation publishes the turns it missed;
- the episode is ``additional_provider_specific_params.session_id`` (or ``episode_id``)
  when given; else the caller's ``litellm_trace_id`` (see :func:`episode_key`); else a
  digest of the conversation's first messages (system and first user message), which
  every later request of that conversation repeats.

Verdicts map to actions: ``continue`` is NONE; ``remind`` is GUARDRAIL_INTERVENED with
the reminder appended to the last text; ``reset``, ``block`` and ``stop`` are BLOCKED
with the reason (the proxy answers the client 400 with it).
"""

import hashlib
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from monitor.integrations.genai_steps import episode_id_for

PREFIX = "litellm-"
MAX_TEXT = 100_000


class GuardrailRequest(BaseModel):
    """What the proxy sends (fields the monitor reads; the others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    input_type: Literal["request", "response"] = "request"
    litellm_call_id: str | None = Field(default=None, max_length=256)
    litellm_trace_id: str | None = Field(default=None, max_length=256)
    structured_messages: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)
    texts: list[str] | None = Field(default=None, max_length=10_000)
    additional_provider_specific_params: dict[str, Any] | None = None
    model: str | None = Field(default=None, max_length=256)


class GuardrailResponse(BaseModel):
    action: Literal["NONE", "BLOCKED", "GUARDRAIL_INTERVENED"]
    blocked_reason: str | None = None
    texts: list[str] | None = None


def _content_text(content: Any) -> str | None:
    """A message's content as text (a string, or OpenAI's list of parts)."""
    if isinstance(content, str):
        return content or None
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("text")]
        return "\n".join(str(p) for p in parts) or None
    return None


def conversation_digest(messages: list[dict[str, Any]]) -> str:
    """A stable key of a conversation: its system messages and first user message."""
    opening: list[Any] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            opening.append([role, _content_text(m.get("content"))])
        elif role == "user":
            opening.append(["user", _content_text(m.get("content"))])
            break
    raw = orjson.dumps(opening, option=orjson.OPT_SORT_KEYS)
    return PREFIX + hashlib.sha256(raw).hexdigest()[:32]


def is_opening(messages: list[dict[str, Any]]) -> bool:
    """True before the model has answered anything in this conversation."""
    return not any(m.get("role") == "assistant" for m in messages)


def episode_key(req: GuardrailRequest, known_traces: dict[str, str]) -> str:
    """The episode of a request; ``known_traces`` (trace id -> episode) is updated.

    The proxy makes up a new ``litellm_trace_id`` for every request unless the caller
    sets one. A made-up id never comes again, so an id is taken as the caller's when the
    conversation's opening request (no assistant turn yet) carried it: later requests
    with it find it in ``known_traces``. Otherwise the conversation digest keys it.
    """
    params = req.additional_provider_specific_params or {}
    for name in ("session_id", "episode_id"):
        value = params.get(name)
        if isinstance(value, str) and value:
            return episode_id_for(PREFIX + value)
    messages = req.structured_messages or []
    trace = req.litellm_trace_id
    if trace and trace in known_traces:
        return known_traces[trace]
    key = (
        episode_id_for(PREFIX + trace)
        if trace and is_opening(messages)
        else conversation_digest(messages)
    )
    if trace:
        known_traces[trace] = key
    return key


def _arguments(raw: Any) -> dict[str, Any] | str:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        return value if isinstance(value, dict) else raw
    return {}


Turn = tuple[list[dict[str, Any]], str | None]  # tool calls with results, text


def assistant_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    """Each assistant turn as (tool calls with their results, text), in order."""
    results = {
        str(m.get("tool_call_id")): _content_text(m.get("content"))
        for m in messages
        if m.get("role") == "tool" and m.get("tool_call_id")
    }
    turns = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        calls = []
        for tc in m.get("tool_calls") if isinstance(m.get("tool_calls"), list) else []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict) or not fn.get("name"):
                continue
            call_id = tc.get("id")
            calls.append(
                {
                    "name": str(fn["name"])[:128],
                    "arguments": _arguments(fn.get("arguments")),
                    "result": results.get(str(call_id)),
                    "id": str(call_id)[:128] if call_id else None,
                }
            )
        text = _content_text(m.get("content"))
        turns.append((calls, text[:MAX_TEXT] if text else None))
    return turns


def answer(
    verdict: str,
    reason: str | None,
    reminder: str | None,
    texts: list[str] | None,
    savepoint_step: int | None = None,
) -> GuardrailResponse:
    """The guardrail action for a verdict of the monitor."""
    if verdict == "continue":
        return GuardrailResponse(action="NONE")
    if verdict == "remind":
        if not reminder:
            return GuardrailResponse(action="NONE")
        new = list(texts or [])
        if new:
            new[-1] = f"{new[-1]}\n\n{reminder}"
        else:
            new = [reminder]
        return GuardrailResponse(action="GUARDRAIL_INTERVENED", texts=new)
    why = reason or "runaway behaviour detected"
    if verdict == "reset" and savepoint_step is not None:
        why = f"{why}; restore the conversation to step {savepoint_step}"
    return GuardrailResponse(action="BLOCKED", blocked_reason=f"runaway-monitor: {verdict}: {why}")
