"""Result types of the scoring core: what one step's score looks like to callers.

Kept free of pydantic and of per-step dict building so that producing one per step stays
cheap: :class:`StepScore` is a plain NamedTuple whose ``components`` mapping is built only
when someone reads it.
"""

from dataclasses import dataclass
from typing import Literal, NamedTuple

FlagKind = Literal["runaway", "self_imitation", "over_exploitation", "loop"]

# Names of StepScore.components, in the order of the tuple the scorer stores.
COMPONENTS: tuple[str, ...] = (
    "goal_imbalance",
    "goal_imbalance_cum",
    "agent_violation",
    "noise_violation",
    "maximising_deviation",
    "sustained_deviation",
    "self_imitation",
    "pressure",
    "drift",
    "stock_decline",
)


@dataclass(frozen=True, slots=True)
class Detection:
    """A flag newly raised at this step; ``onset_step <= detected_step``."""

    flag: FlagKind
    onset_step: int
    detected_step: int
    mode: str  # unbounded_max, single_objective, over_harvest, cycle, constant
    objective: str | None


class StepScore(NamedTuple):
    """The detectors' reading of one step (see docs/detectors.md for each field).

    ``step``; ``runaway_index`` ([0,1]); ``hazard`` ([0,1], estimated chance that a flip
    begins within the next 10 steps); ``component_values`` (in :data:`COMPONENTS` order;
    ``components`` maps them by name); ``flags`` (currently raised); ``detections`` (flags
    newly raised at this step); ``safe`` (this step may serve as a savepoint);
    ``savepoint_step`` (last step before the current runaway's onset, 0 if none);
    ``loop_level`` (tool-call/text loops at this step: 0 none, 1 noted, 2 a loop, 3 a
    persistent loop; see loops.py).
    """

    step: int
    runaway_index: float
    hazard: float
    component_values: tuple[float, ...]
    flags: frozenset[str]
    detections: tuple[Detection, ...]
    safe: bool
    savepoint_step: int
    loop_level: int = 0

    @property
    def components(self) -> dict[str, float]:
        """Per-step components by name (a fresh dict on every access)."""
        return dict(zip(COMPONENTS, self.component_values, strict=True))
