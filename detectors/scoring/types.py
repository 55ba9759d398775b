"""Result types of the scoring core: what one step's score looks like to callers.

Kept free of pydantic so that building one per step stays cheap (the scorer's budget is
a few microseconds per step).
"""

from dataclasses import dataclass
from typing import Literal

FlagKind = Literal["runaway", "self_imitation"]


@dataclass(frozen=True, slots=True)
class Detection:
    """A flag newly raised at this step; ``onset_step <= detected_step``."""

    flag: FlagKind
    onset_step: int
    detected_step: int
    mode: str  # unbounded_max, single_objective, over_harvest, cycle, constant
    objective: str | None


@dataclass(frozen=True, slots=True)
class StepScore:
    """The detectors' reading of one step (see docs/detectors.md for each field)."""

    step: int
    runaway_index: float  # [0,1]
    hazard: float  # [0,1] estimated chance that a flip begins within the next 10 steps
    components: dict[str, float]
    flags: frozenset[str]  # currently raised flags
    detections: tuple[Detection, ...]  # flags newly raised at this step
    safe: bool  # this step may serve as a savepoint
    savepoint_step: int  # last step before the current runaway's onset, 0 if none
