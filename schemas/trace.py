"""The per-episode step trace: one entry per scored step, for the live page's drill-down.

The detector is the one place that sees every step of every episode (worker, sidecar,
Inspect, OTLP) beside its score and verdict, so it writes the trace, in the same atomic
call as the verdict, to ``Keys.trace(episode_id)`` (``MAXLEN ~ trace_maxlen``; 0 turns
it off). The entry is ``{"k": "trace", "v": version, "d": TraceStep JSON}``. Never the
agent's text: prompts stay out of what the page shows.

What counts as a *flip*, everywhere (the page, ``runaway_flips_total``, the API's
totals and an episode's ``flip_count``): one detection the detector raised at a step,
i.e. one :class:`~schemas.events.FlipEvent`, whatever its flag. The detector counts each
one in ``runaway_flips_total{flag}`` and in the shard's totals hash
(``Keys.totals(shard)``, field ``flips:<flag>``) in the same place; the API adds the
shards' hashes up and the page shows the API's number.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import SCHEMA_VERSION

_VERSION = b"%d" % SCHEMA_VERSION

# fields of the totals hash (Keys.totals(shard)); flips are "flips:<flag>"
FLIPS_PREFIX = "flips:"
RECOVERIES = "recoveries"
STEPS = "steps"
EPISODES_FLIPPED = "episodes_flipped"


class TraceStep(BaseModel):
    """One scored step as the page's drill-down shows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: int = Field(ge=1)
    ts: float = Field(description="when the step was published (Unix seconds)")
    observation: dict[str, float] = Field(default_factory=dict)
    action: dict[str, float] = Field(default_factory=dict)
    rewards: dict[str, float] = Field(default_factory=dict)
    tool_calls: list[str] = Field(default_factory=list, description="names of the tools called")
    mitigation: str | None = None
    invalid_answers: int = 0
    runaway_index: float = 0.0
    hazard: float = 0.0
    flags: list[str] = Field(default_factory=list, description="flags raised so far")
    detections: list[str] = Field(default_factory=list, description="flags raised at this step")
    verdict: str = Field(description="the action answered: continue, remind, reset, ...")
    cause: str | None = Field(default=None, description="the flag behind a non-continue verdict")
    savepoint_step: int | None = None


def encode_trace(
    ev: Any,
    runaway_index: float,
    hazard: float,
    flags: Sequence[str],
    detections: Sequence[str],
    verdict: str,
    cause: str | None,
    savepoint_step: int | None,
) -> dict[str, bytes]:
    """The trace entry of step ``ev`` (a StepEvent) with its score, without the model.

    Built by orjson from values the detector already validated (the hot path, like
    ``encode_verdict``); readers validate with :class:`TraceStep`.
    """
    tool_calls = getattr(ev, "tool_calls", None) or ()
    data = orjson.dumps(
        {
            "step": ev.step,
            "ts": ev.ts,
            "observation": ev.observation,
            "action": ev.action,
            "rewards": ev.rewards,
            "tool_calls": [getattr(t, "name", str(t)) for t in tool_calls],
            "mitigation": ev.mitigation,
            "invalid_answers": ev.invalid_answers,
            "runaway_index": float(runaway_index),
            "hazard": float(hazard),
            "flags": list(flags),
            "detections": list(detections),
            "verdict": verdict,
            "cause": cause,
            "savepoint_step": savepoint_step,
        }
    )
    return {"k": b"trace", "v": _VERSION, "d": data}


def decode_trace(fields: Mapping[Any, Any]) -> TraceStep | None:
    """A trace entry as :class:`TraceStep`; None for an entry of another version or shape."""

    def get(name: str) -> Any:
        value = fields.get(name.encode(), fields.get(name))
        return value.decode() if isinstance(value, bytes) and name != "d" else value

    if get("k") != "trace" or get("v") != _VERSION.decode():
        return None
    try:
        return TraceStep.model_validate_json(get("d"))
    except ValueError:
        return None
