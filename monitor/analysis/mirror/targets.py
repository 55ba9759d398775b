"""What the probes predict, per step, from a trajectory's labels (pure).

(a) ``state``: the target is in a runaway state: a labelled flip whose onset is at or
    before this step.
(b) ``within_10``: a flip begins within the next 10 steps: ``onset - 10 <= step < onset``.
    Steps at or after the onset are not asked (the flip has begun), so they are left out
    of (b)'s training and scoring, for the probes and the hazard alike.
"""

from detectors.evaluation import Label

HORIZON = 10


def state_target(label: Label, step: int) -> int:
    return int(label.runaway and label.onset_step is not None and step >= label.onset_step)


def within_target(label: Label, step: int, horizon: int = HORIZON) -> int | None:
    """1, 0, or None (not asked: the flip has begun)."""
    if not label.runaway or label.onset_step is None:
        return 0
    if step >= label.onset_step:
        return None
    return int(step >= label.onset_step - horizon)
