"""Encoding of events as Redis stream entries, and the one place that decodes them.

An entry is ``{"k": kind, "v": schema version, "d": event JSON}``; entries of a shard's
verdicts stream add ``"e": episode id`` so a reader can skip other episodes' entries
without decoding them. Decoding accepts the bytes or str shapes that redis-py returns
under RESP2 and RESP3 and raises :class:`BadEntry` with a reason that goes to the
dead-letter stream.
"""

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import MAX_TEXT, SCHEMA_VERSION, Event, _new_id

_EVENT = TypeAdapter(Event)
_VERSION = b"%d" % SCHEMA_VERSION
MAX_ENTRY_BYTES = 256 * 1024


class BadEntry(ValueError):
    """A stream entry that cannot be turned into an event; the message says why."""


def encode(event: Any) -> dict[str, bytes]:
    """Stream fields for one event (pydantic's Rust serializer does the JSON)."""
    return {
        "k": event.kind.encode(),
        "v": _VERSION,
        "d": event.__pydantic_serializer__.to_json(event),
    }


def encode_verdict(
    episode_id: str,
    step: int,
    verdict: str,
    savepoint_step: int | None,
    runaway_index: float,
    hazard: float,
    flags: Sequence[str],
    detections: Sequence[str],
    step_ts: float,
) -> dict[str, bytes]:
    """The entry of a :class:`~schemas.events.Verdict`, without building the model.

    The detector writes one verdict per step from values it computed itself, so the
    pydantic construction (validation) is skipped and orjson writes the JSON. Same fields
    in the same order as ``encode(Verdict(...))``; ``tests/test_wire_fast.py`` holds the
    two to each other, and every reader still validates what it decodes.
    """
    data = orjson.dumps(
        {
            "id": _new_id(),
            "episode_id": episode_id,
            "ts": time.time(),
            "kind": "verdict",
            "step": step,
            "verdict": verdict,
            "savepoint_step": savepoint_step,
            "runaway_index": float(runaway_index),
            "hazard": float(hazard),
            "flags": list(flags),
            "detections": list(detections),
            "step_ts": step_ts,
        }
    )
    return {"k": b"verdict", "v": _VERSION, "d": data}


def encode_step(
    episode_id: str,
    step: int,
    observation: Mapping[str, float],
    action: Mapping[str, float],
    after: Mapping[str, float] | None,
    noise: Mapping[str, float] | None,
    rewards: Mapping[str, float],
    text: str | None,
    invalid_answers: int,
    mitigation: str | None,
    voluntary_reset: bool,
    usage: Mapping[str, float] | None,
) -> dict[str, bytes]:
    """The entry of a :class:`~schemas.events.StepEvent` played by a worker, without the model.

    A worker publishes one step per agent answer from values its own environment made, so
    the pydantic construction is skipped as for verdicts (13 us of 19 per step) and orjson
    writes the JSON; the detectors validate every step they read. Same fields in the same
    order as ``encode(StepEvent(...))``; ``tests/test_wire_fast.py`` holds them together.
    """
    if step < 1 or invalid_answers < 0:
        raise ValueError("step must be at least 1 and invalid_answers at least 0")
    if text is not None and len(text) > MAX_TEXT:
        raise ValueError(f"the answer text exceeds {MAX_TEXT} characters")
    data = orjson.dumps(
        {
            "id": _new_id(),
            "episode_id": episode_id,
            "ts": time.time(),
            "kind": "step",
            "step": step,
            "observation": observation,
            "action": action,
            "after": after,
            "noise": noise,
            "rewards": rewards,
            "reference": None,
            "text": text,
            "invalid_answers": invalid_answers,
            "mitigation": mitigation,
            "voluntary_reset": voluntary_reset,
            "usage": usage,
        }
    )
    return {"k": b"step", "v": _VERSION, "d": data}


def routed(fields: dict[str, bytes], episode_id: str) -> dict[str, bytes]:
    """``fields`` tagged with the episode they belong to (the shard verdicts stream)."""
    return {**fields, "e": episode_id.encode()}


def entry_episode(fields: Mapping[Any, Any]) -> str | None:
    """The episode id a routed entry names, or None (a reader then skips it)."""
    value = fields.get(b"e", fields.get("e"))
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


_BYTES_NAMES = {name: name.encode() for name in ("k", "v", "d", "e")}


def _field(fields: Mapping[Any, Any], name: str) -> bytes:
    value = fields.get(_BYTES_NAMES.get(name) or name.encode())  # RESP2 and RESP3: bytes
    if value is None:
        value = fields.get(name)
    if value is None:
        raise BadEntry(f"missing field {name!r}")
    return value.encode() if isinstance(value, str) else bytes(value)


def _check_version(fields: Mapping[Any, Any]) -> None:
    version = _field(fields, "v")
    if version != _VERSION:
        raise BadEntry(f"schema version {version[:16]!r} is not {SCHEMA_VERSION}")


def decode(fields: Mapping[Any, Any]) -> Any:
    """The event in one stream entry, or :class:`BadEntry`."""
    _check_version(fields)
    data = _field(fields, "d")
    if len(data) > MAX_ENTRY_BYTES:
        raise BadEntry(f"entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
    try:
        event = _EVENT.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        raise BadEntry(f"invalid {where}: {first['msg']}") from None
    if event.kind.encode() != _field(fields, "k"):
        raise BadEntry("field 'k' does not match the event kind")
    return event


def encode_job(spec: Any) -> dict[str, bytes]:
    """A jobs-stream entry: one episode for a worker to run."""
    return {"k": b"job", "v": _VERSION, "d": spec.model_dump_json().encode()}


def decode_job(fields: Mapping[Any, Any]) -> Any:
    """The EpisodeSpec in a jobs-stream entry, or :class:`BadEntry`."""
    from schemas.episode import EpisodeSpec

    _check_version(fields)
    try:
        return EpisodeSpec.model_validate_json(_field(fields, "d"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise BadEntry(f"invalid {where}: {first['msg']}") from None
