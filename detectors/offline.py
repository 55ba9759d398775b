"""Offline scoring backend: run a whole trajectory through the in-process scorer.

``replay --offline`` and ``evaluate`` use :func:`score_offline`; the streaming backend
(through Redis) produces the same :class:`TrajectoryResult` from the detector's verdicts.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from detectors.scoring import EpisodeScorer, StepScore
from schemas.episode import EpisodeSpec
from schemas.events import StepEvent


@dataclass(slots=True)
class TrajectoryResult:
    """What the detectors made of one trajectory."""

    source: str
    benchmark: str
    steps: int = 0
    flipped: bool = False
    flip_step: int | None = None  # onset
    detected_step: int | None = None
    flip_mode: str | None = None
    flip_objective: str | None = None
    runaway_index: float = 0.0
    self_imitation: bool = False
    self_imitation_step: int | None = None
    self_imitation_detected_step: int | None = None
    over_exploitation: bool = False
    over_exploitation_step: int | None = None  # onset
    over_exploitation_detected_step: int | None = None
    scores: list[StepScore] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The JSON object ``replay --jsonl`` prints (no per-step data)."""
        return {
            "source": self.source,
            "benchmark": self.benchmark,
            "steps": self.steps,
            "flipped": self.flipped,
            "flip_step": self.flip_step,
            "detected_step": self.detected_step,
            "flip_mode": self.flip_mode,
            "flip_objective": self.flip_objective,
            "runaway_index": round(self.runaway_index, 4),
            "self_imitation": self.self_imitation,
            "self_imitation_step": self.self_imitation_step,
            "over_exploitation": self.over_exploitation,
            "over_exploitation_step": self.over_exploitation_step,
        }


def score_offline(
    spec: EpisodeSpec,
    events: Iterable[StepEvent],
    source: str = "",
    benchmark: str = "",
    keep_scores: bool = True,
) -> TrajectoryResult:
    """Score every step in process; the first flip and self-imitation detections count."""
    scorer = EpisodeScorer(spec)
    res = TrajectoryResult(source=source, benchmark=benchmark or spec.environment or "")
    for ev in events:
        sc = scorer.update(ev)
        res.steps += 1
        res.runaway_index = sc.runaway_index
        if keep_scores:
            res.scores.append(sc)
        for d in sc.detections:
            if d.flag == "runaway" and not res.flipped:
                res.flipped = True
                res.flip_step = d.onset_step
                res.detected_step = d.detected_step
                res.flip_mode = d.mode
                res.flip_objective = d.objective
            elif d.flag == "self_imitation" and not res.self_imitation:
                res.self_imitation = True
                res.self_imitation_step = d.onset_step
                res.self_imitation_detected_step = d.detected_step
            elif d.flag == "over_exploitation" and not res.over_exploitation:
                res.over_exploitation = True
                res.over_exploitation_step = d.onset_step
                res.over_exploitation_detected_step = d.detected_step
    return res
