"""Per-episode detector state: the scorer plus bookkeeping, and its Redis checkpoint form.

The spec is checkpointed once (field ``<episode>:spec``) and the scorer state after every
batch (field ``<episode>``), both in the shard's state hash, so a detector that takes a
shard over resumes each episode exactly where the last one acked.

A checkpoint that cannot be read (garbage, another release's fields, a NaN written as
null) never stops the detector: an unreadable state restarts the episode's scoring from
its next step and says so in :attr:`EpisodeRecord.note` (the next verdict's reason); a
spec of another release is read without the fields this one does not know; a spec that
cannot be read at all raises :class:`CheckpointError` for the consumer to dead-letter the
episode's entries with the reason.
"""

import functools
import logging
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from pydantic import ValidationError

from detectors.scoring import EpisodeScorer
from detectors.scoring.finite import finite
from schemas.episode import EpisodeSpec
from schemas.events import StepEvent

log = logging.getLogger(__name__)

_SHARED: dict[str, Any] = {}  # canonical copies of the parts many specs share
_SHARED_MAX = 4096
RECENT_STEPS = 16  # fingerprints kept to tell a redelivery from a conflicting duplicate


class RecentSteps:
    """The fingerprints of the last :data:`RECENT_STEPS` step numbers, in two fixed int64
    arrays indexed by ``step % RECENT_STEPS`` (~0.3 KB an episode; a dict of 16 ints was
    ~1.1 KB, and the detector holds thousands of episodes)."""

    __slots__ = ("fingerprints", "steps")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self.steps = array("q", bytes(8 * RECENT_STEPS))  # 0: no step in the slot
        self.fingerprints = array("q", bytes(8 * RECENT_STEPS))
        for step, fp in pairs:
            self.add(step, fp)

    def add(self, step: int, fingerprint: int) -> None:
        slot = step % RECENT_STEPS
        self.steps[slot] = step
        self.fingerprints[slot] = fingerprint

    def get(self, step: int) -> int | None:
        """The fingerprint of ``step`` while it is among the last ones, else None."""
        slot = step % RECENT_STEPS
        return self.fingerprints[slot] if self.steps[slot] == step else None

    def pairs(self) -> list[list[int]]:
        """``[step, fingerprint]`` of the steps held, in slot order (the checkpoint's form;
        a reader keys them by step)."""
        return [[s, f] for s, f in zip(self.steps, self.fingerprints) if s]  # noqa: B905


class CheckpointError(ValueError):
    """An episode's spec checkpoint cannot be read; the message says why."""


def fingerprint(ev: StepEvent, values: itemgetter) -> int:
    """What a step said, to compare a duplicate with it: the same in every process
    (string hashes are salted, so never ``hash`` of text).

    A numeric step: a hash of its observation and action in objective order (``values``
    is the record's getter), 0.5 us against 1.2 us for a crc32 of the JSON. A tool or text
    step (which may leave objectives out): a crc32 of its canonical JSON.
    """
    if not (ev.tool_calls or ev.text is not None or ev.state is not None):
        return hash((values(ev.observation), values(ev.action)))
    said = [ev.observation, ev.action, [c.model_dump() for c in ev.tool_calls], ev.text, ev.state]
    return zlib.crc32(orjson.dumps(said, option=orjson.OPT_SORT_KEYS))


def _shared(part: Any) -> Any:
    """One instance per distinct (frozen) value: equal objectives, agent and detector
    settings of thousands of episodes are kept once instead of once per episode."""
    if part is None:
        return None
    key = f"{type(part).__name__}:{part.model_dump_json()}"
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = part
    return found


def compact(spec: EpisodeSpec) -> EpisodeSpec:
    """``spec`` with its objectives, agent and detector config shared with equal specs
    (all are frozen models; the spec compares equal to the original)."""
    spec = spec.model_copy(
        update={
            "objectives": _shared(spec.objectives),
            "agent": _shared(spec.agent),
            "detector": _shared(spec.detector),
        }
    )
    # The names of the fields set (pydantic keeps a set per instance, ~0.7 KB): one set per
    # distinct content. Safe to share: pydantic copies it before it changes it (model_copy)
    # and a frozen model never assigns a field.
    object.__setattr__(spec, "__pydantic_fields_set__", _fields_set(spec.model_fields_set))
    return spec


_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _fields_set(names: set[str]) -> set[str]:
    key = frozenset(names)
    found = _FIELDS_SETS.get(key)
    if found is None:
        if len(_FIELDS_SETS) >= _SHARED_MAX:
            _FIELDS_SETS.clear()
        found = _FIELDS_SETS[key] = set(key)
    return found


@functools.lru_cache(maxsize=4096)
def _name_checks(names: tuple[str, ...]) -> tuple[frozenset[str], itemgetter]:
    """The objective names as a set and a getter of their values in order, built once
    per set of names and shared by the episodes that have them."""
    return frozenset(names), itemgetter(*names)


@dataclass(slots=True)
class EpisodeRecord:
    spec: EpisodeSpec
    scorer: EpisodeScorer
    last_step: int = 0
    flips: int = 0
    recoveries_sent: int = 0
    first_safe: int | None = None  # first step judged safe (a reset needs one)
    summary_ttl_set: bool = field(default=False, repr=False)  # EXPIRE sent for the summary
    names: frozenset[str] = field(init=False, repr=False)  # checked against every step
    control_key: str = field(default="", repr=False)  # set by the consumer on first use
    recent: RecentSteps = field(default_factory=RecentSteps, repr=False)
    missing: int = 0  # steps never seen (gaps), recorded in the summary
    note: str | None = field(default=None, repr=False)  # for the next verdict's reason
    seen_at: float = field(default=0.0, repr=False)  # monotonic time of its last event
    values: itemgetter = field(init=False, repr=False)  # objective values, in spec order

    def __post_init__(self) -> None:
        self.names, self.values = _name_checks(self.spec.objectives.names)

    @classmethod
    def start(cls, spec: EpisodeSpec) -> "EpisodeRecord":
        spec = compact(spec)
        return cls(spec=spec, scorer=EpisodeScorer(spec))

    def remember(self, ev: StepEvent) -> None:
        """Keep the fingerprint of a scored step (the last RECENT_STEPS of them)."""
        self.recent.add(ev.step, fingerprint(ev, self.values))

    def dump_state(self) -> bytes | None:
        """The checkpoint, or None when the state holds a non-finite number (never written:
        orjson would write it as null, which no detector can load)."""
        if not self.scorer.finite():
            return None
        state = {
            "last_step": self.last_step,
            "flips": self.flips,
            "recoveries_sent": self.recoveries_sent,
            "first_safe": self.first_safe,
            "missing": self.missing,
            "recent": self.recent.pairs(),
            "scorer": self.scorer.state_view(),  # serialised at once, before any update
        }
        return orjson.dumps(state)

    def dump_spec(self) -> bytes:
        return self.spec.model_dump_json().encode()

    @classmethod
    def load(cls, spec_json: bytes, state_json: bytes | None) -> "EpisodeRecord":
        """The record from its checkpoint; :class:`CheckpointError` when the spec is
        unreadable. An unreadable state gives a fresh scorer and a :attr:`note`."""
        spec = compact(load_spec(spec_json))
        if state_json is None:
            return cls.start(spec)
        try:
            return cls._from_state(spec, orjson.loads(state_json))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            why = f"{type(exc).__name__}: {str(exc)[:120]}"
            log.warning(
                "episode %s: checkpoint unreadable (%s); scoring restarts", spec.episode_id, why
            )
            rec = cls.start(spec)
            last = orjson.loads(state_json).get("last_step") if _is_object(state_json) else None
            rec.last_step = last if isinstance(last, int) and not isinstance(last, bool) else 0
            rec.note = f"checkpoint unreadable ({why}); scoring restarted at this step"
            return rec

    @classmethod
    def _from_state(cls, spec: EpisodeSpec, state: Any) -> "EpisodeRecord":
        if not isinstance(state, dict):
            raise ValueError("the checkpoint is not a JSON object")
        counts = [state[name] for name in ("last_step", "flips", "recoveries_sent")]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError("last_step, flips and recoveries_sent must be counts")
        if not finite(state["scorer"]):
            raise ValueError("the scorer state holds a non-finite number")
        rec = cls(spec=spec, scorer=EpisodeScorer.from_state(spec, state["scorer"]))
        rec.last_step, rec.flips, rec.recoveries_sent = counts
        rec.missing = int(state.get("missing", 0))
        rec.recent = RecentSteps((int(s), int(f)) for s, f in state.get("recent", []))
        first_safe = state.get("first_safe")
        rec.first_safe = first_safe if isinstance(first_safe, int) and first_safe >= 0 else None
        return rec


def _is_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def load_spec(spec_json: bytes) -> EpisodeSpec:
    """The checkpointed spec; one of another release is read without the fields this
    release does not know (logged). :class:`CheckpointError` when it cannot be read."""
    try:
        return EpisodeSpec.model_validate_json(spec_json)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = f"{'.'.join(str(p) for p in first['loc']) or 'spec'}: {first['msg']}"
    try:
        data = orjson.loads(spec_json)
    except orjson.JSONDecodeError:
        raise CheckpointError(f"spec checkpoint is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise CheckpointError("spec checkpoint is not a JSON object")
    unknown = sorted(set(data) - set(EpisodeSpec.model_fields))
    try:
        spec = EpisodeSpec.model_validate({k: v for k, v in data.items() if k not in unknown})
    except ValidationError:
        raise CheckpointError(f"spec checkpoint is invalid ({error})") from None
    log.warning(
        "episode %s: spec checkpoint of another release; ignored fields %s",
        spec.episode_id,
        unknown,
    )
    return spec


def spec_field(episode_id: str) -> str:
    return f"{episode_id}:spec"
