"""Wire formats shared by every part of runaway-monitor: one definition of each.

Every stream entry is one of the events in :mod:`schemas.events`, encoded by
:mod:`schemas.wire`; every Redis key is named in :mod:`schemas.keys`; every setting
lives in :mod:`schemas.settings`.
"""

from schemas.episode import AgentSpec, DetectorConfig, EpisodeSpec, FailMode
from schemas.events import (
    SCHEMA_VERSION,
    EpisodeFinished,
    EpisodeStarted,
    Event,
    FlipEvent,
    RecoveryApplied,
    RecoveryCommand,
    StepEvent,
    Verdict,
)
from schemas.objectives import ObjectiveKind, ObjectiveSpec

__all__ = [
    "SCHEMA_VERSION",
    "AgentSpec",
    "DetectorConfig",
    "EpisodeFinished",
    "EpisodeSpec",
    "EpisodeStarted",
    "Event",
    "FailMode",
    "FlipEvent",
    "ObjectiveKind",
    "ObjectiveSpec",
    "RecoveryApplied",
    "RecoveryCommand",
    "StepEvent",
    "Verdict",
]
