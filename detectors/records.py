"""Per-episode detector state: the scorer plus bookkeeping, and its Redis checkpoint form.

The spec is checkpointed once (field ``<episode>:spec``) and the scorer state after every
batch (field ``<episode>``), both in the shard's state hash, so a detector that takes a
shard over resumes each episode exactly where the last one acked.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.scoring import EpisodeScorer, StepScore
from schemas.episode import EpisodeSpec

log = logging.getLogger(__name__)

_SHARED: dict[str, Any] = {}  # canonical copies of the parts many specs share
_SHARED_MAX = 4096


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
    return spec.model_copy(
        update={
            "objectives": _shared(spec.objectives),
            "agent": _shared(spec.agent),
            "detector": _shared(spec.detector),
        }
    )


@dataclass(slots=True)
class EpisodeRecord:
    spec: EpisodeSpec
    scorer: EpisodeScorer
    last_step: int = 0
    flips: int = 0
    recoveries_sent: int = 0
    first_safe: int | None = None  # first step judged safe (a reset needs one)
    last_score: StepScore | None = field(default=None, repr=False)
    summary_ttl_set: bool = field(default=False, repr=False)  # EXPIRE sent for the summary
    names: frozenset[str] = field(init=False, repr=False)  # checked against every step
    control_key: str = field(default="", repr=False)  # set by the consumer on first use

    def __post_init__(self) -> None:
        self.names = frozenset(self.spec.objectives.names)

    @classmethod
    def start(cls, spec: EpisodeSpec) -> "EpisodeRecord":
        spec = compact(spec)
        return cls(spec=spec, scorer=EpisodeScorer(spec))

    def dump_state(self) -> bytes:
        return orjson.dumps(
            {
                "last_step": self.last_step,
                "flips": self.flips,
                "recoveries_sent": self.recoveries_sent,
                "first_safe": self.first_safe,
                "scorer": self.scorer.to_state(),
            }
        )

    def dump_spec(self) -> bytes:
        return self.spec.model_dump_json().encode()

    @classmethod
    def load(cls, spec_json: bytes, state_json: bytes | None) -> "EpisodeRecord":
        spec = compact(EpisodeSpec.model_validate_json(spec_json))
        if state_json is None:
            return cls.start(spec)
        state: dict[str, Any] = orjson.loads(state_json)
        try:
            scorer = EpisodeScorer.from_state(spec, state["scorer"])
        except ValueError as exc:  # a checkpoint of another scorer version: start afresh
            log.warning("episode %s: %s; scoring restarts from here", spec.episode_id, exc)
            scorer = EpisodeScorer(spec)
        return cls(
            spec=spec,
            scorer=scorer,
            last_step=state["last_step"],
            flips=state["flips"],
            recoveries_sent=state["recoveries_sent"],
            first_safe=state.get("first_safe"),
        )


def spec_field(episode_id: str) -> str:
    return f"{episode_id}:spec"
