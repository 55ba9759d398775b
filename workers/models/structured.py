"""Structured answers: a JSON object with one integer per objective, turned back into text.

Why: small models rarely follow "comma-separated integers only" (SmolLM2-135M never did
in free text), but constrained to a JSON schema they answer every step. The environment
still parses text (the last non-empty line), so the JSON answer is converted into the
benchmark's answer text ("5, 3") and the free-text path stays the single way answers
enter an episode. A reply that is not the expected JSON is passed through as text, so
the environment's parser decides and re-asks when it is invalid.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import orjson


class StructuredMode(StrEnum):
    """How to ask the server for a JSON answer."""

    AUTO = "auto"  # the best the provider supports, falling back on refusal
    JSON_SCHEMA = "json_schema"  # OpenAI response_format json_schema (OpenAI, vLLM, Ollama)
    JSON_OBJECT = "json_object"  # llama.cpp server: {"type": "json_object", "schema": ...}
    OFF = "off"  # free text only


def answer_schema(names: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of an answer: ``{"A": int >= 0, "B": int >= 0}``, all required."""
    return {
        "type": "object",
        "properties": {n: {"type": "integer", "minimum": 0} for n in names},
        "required": list(names),
        "additionalProperties": False,
    }


def response_format(mode: StructuredMode, names: Sequence[str]) -> dict[str, Any] | None:
    """The ``response_format`` request field for a mode (None for ``off``)."""
    if mode is not StructuredMode.JSON_SCHEMA and mode is not StructuredMode.JSON_OBJECT:
        return None  # free text: no schema to build on every call
    schema = answer_schema(names)
    if mode is StructuredMode.JSON_SCHEMA:
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    if mode is StructuredMode.JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return None


def _strip_fences(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        if body.lower().startswith("json"):
            body = body[4:]
    return body.strip()


def json_answer_to_text(
    text: str,
    names: Sequence[str],
    formatter: Callable[[Mapping[str, int]], str] | None = None,
) -> str | None:
    """The benchmark answer text for a JSON answer, or None if it is not one.

    Accepts exactly the named integer fields (integral floats and digit strings too, as
    small models emit them); ``formatter`` is the environment's ``format_action`` when
    known, else values are joined with ", " in objective order.
    """
    try:
        data = orjson.loads(_strip_fences(text))
    except (orjson.JSONDecodeError, TypeError):
        try:
            data = json.loads(_strip_fences(text), strict=False)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    values: dict[str, int] = {}
    for name in names:
        raw = data.get(name)
        if isinstance(raw, bool) or raw is None:
            return None
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw.strip())
        if not isinstance(raw, int):
            return None
        values[name] = raw
    if formatter is not None:
        return formatter(values)
    return ", ".join(str(values[n]) for n in names)
