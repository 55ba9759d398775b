"""Result types of the scoring core: what one step's score looks like to callers.

Kept free of pydantic and of per-step dict building so that producing one per step stays
cheap (the scorer's budget is a few microseconds per step): :class:`StepScore` is a tuple
subclass whose ``components`` mapping is built only when someone reads it.
"""

from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

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


class StepScore(tuple):
    """The detectors' reading of one step (see docs/detectors.md for each field).

    Fields: ``step``, ``runaway_index`` ([0,1]), ``hazard`` ([0,1], estimated chance that a
    flip begins within the next 10 steps), ``components`` (name -> value, built on access
    from the stored tuple ``component_values`` in :data:`COMPONENTS` order), ``flags``
    (currently raised), ``detections`` (flags newly raised at this step), ``safe`` (this
    step may serve as a savepoint), ``savepoint_step`` (last step before the current
    runaway's onset, 0 if none), ``loop_level`` (tool-call/text loops at this step: 0 none,
    1 noted, 2 a loop, 3 a persistent loop; see loops.py). Immutable; equal when all
    fields are equal.
    """

    __slots__ = ()

    def __new__(
        cls,
        step: int,
        runaway_index: float,
        hazard: float,
        component_values: tuple[float, ...],
        flags: frozenset[str],
        detections: tuple[Detection, ...],
        safe: bool,
        savepoint_step: int,
        loop_level: int = 0,
    ) -> "StepScore":
        return tuple.__new__(
            cls,
            (
                step,
                runaway_index,
                hazard,
                tuple(component_values),
                flags,
                detections,
                safe,
                savepoint_step,
                loop_level,
            ),
        )

    step: int = property(itemgetter(0))  # type: ignore[assignment]
    runaway_index: float = property(itemgetter(1))  # type: ignore[assignment]
    hazard: float = property(itemgetter(2))  # type: ignore[assignment]
    component_values: tuple[float, ...] = property(itemgetter(3))  # type: ignore[assignment]
    flags: frozenset[str] = property(itemgetter(4))  # type: ignore[assignment]
    detections: tuple[Detection, ...] = property(itemgetter(5))  # type: ignore[assignment]
    safe: bool = property(itemgetter(6))  # type: ignore[assignment]
    savepoint_step: int = property(itemgetter(7))  # type: ignore[assignment]
    loop_level: int = property(itemgetter(8))  # type: ignore[assignment]

    @property
    def components(self) -> dict[str, float]:
        """Per-step components by name (a fresh dict on every access)."""
        return dict(zip(COMPONENTS, self[3], strict=True))

    def __repr__(self) -> str:
        return (
            f"StepScore(step={self[0]}, runaway_index={self[1]!r}, hazard={self[2]!r}, "
            f"components={self.components!r}, flags={set(self[4]) or '{}'}, "
            f"detections={self[5]!r}, safe={self[6]}, savepoint_step={self[7]}, "
            f"loop_level={self[8]})"
        )
