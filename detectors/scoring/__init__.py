"""Pure, incremental scoring of one episode: components, Runaway Index, flags, hazard.

No I/O and no clock: the same :class:`EpisodeScorer` runs offline (replay, evaluate) and
inside the streaming detector. See docs/detectors.md for every definition.
"""

from detectors.scoring.scorer import EpisodeScorer
from detectors.scoring.types import Detection, StepScore

__all__ = ["Detection", "EpisodeScorer", "StepScore"]
