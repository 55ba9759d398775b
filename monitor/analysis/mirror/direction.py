"""The flip direction: where a layer's hidden states move once a flip has begun.

Per layer, the mean hidden state of the labelled flipped trajectories' steps at or after
their onset minus the mean of their steps before it (pooled over trajectories), scaled to
unit length. Projecting every step of a trajectory on it gives one curve per layer: a
mirror that "sees" the flip shows the curve rise at the onset. Pure numpy.
"""

from collections.abc import Sequence

import numpy as np

from detectors.evaluation import Label
from monitor.analysis.mirror.store import MirrorStore, Record


def flip_direction(
    store: MirrorStore, records: Sequence[Record], labels: dict[str, Label], layer: int
) -> np.ndarray | None:
    """The unit flip direction at ``layer``; None without flipped, labelled trajectories."""
    before, after = [], []
    for record in records:
        label = labels.get(record.trajectory)
        if label is None or not label.runaway or label.onset_step is None:
            continue
        hidden = store.hidden(record)[:, record.layers.index(layer), :].astype(np.float64)
        steps = np.array(record.steps)
        before.append(hidden[steps < label.onset_step])
        after.append(hidden[steps >= label.onset_step])
    pre = np.concatenate(before) if before else np.empty((0,))
    post = np.concatenate(after) if after else np.empty((0,))
    if len(pre) == 0 or len(post) == 0:
        return None
    direction = post.mean(axis=0) - pre.mean(axis=0)
    norm = float(np.linalg.norm(direction))
    return direction / norm if norm > 0 else None


def projection(store: MirrorStore, record: Record, layer: int, direction: np.ndarray) -> np.ndarray:
    """Each step's hidden state at ``layer`` projected on ``direction``."""
    hidden = store.hidden(record)[:, record.layers.index(layer), :].astype(np.float64)
    return hidden @ direction
