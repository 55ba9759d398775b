"""Encoding of events as Redis stream entries, and the one place that decodes them.

An entry is ``{"k": kind, "v": schema version, "d": event JSON}``; entries of a shard's
verdicts stream add ``"e": episode id`` so a reader can skip other episodes' entries
without decoding them. Decoding accepts the bytes or str shapes that redis-py returns
under RESP2 and RESP3 and raises :class:`BadEntry` with a reason that goes to the
dead-letter stream.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.events import SCHEMA_VERSION, Event

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
