"""Goal imbalance: how lopsidedly the agent serves its objectives, windowed and cumulative.

Per step, each objective's *excess* is the action volume given beyond its reference,
``max(0, a_i - ref_i)``, and the step's scale is ``max(1, sum a, sum ref)``. The windowed
imbalance is the largest objective's excess over the last :data:`WINDOW` steps divided
by the scales of those steps; the cumulative one is the largest cumulative excess divided
by all scales so far. Both are in [0, 1]; a balanced agent's are 0.
"""

import math
from array import array
from collections.abc import Sequence
from typing import Final

from detectors.scoring.signals import EPS

WINDOW: Final = 10  # steps of the windowed goal imbalance


def excess(
    actions: tuple[float, ...], refs: list[float], window_sums: list[float], cum: list[float]
) -> tuple[list[float], float]:
    """This step's excess per objective, plus its scale as the last element; adds the
    excess to ``window_sums`` and ``cum`` (in place) and returns the largest ``cum``."""
    n = len(refs)
    exc = [0.0] * (n + 1)
    sa = 0.0
    sr = 0.0
    top = 0.0
    for i in range(n):
        ai = actions[i]
        ri = refs[i]
        sa += ai
        sr += ri
        if ai > ri:
            e = exc[i] = ai - ri
            window_sums[i] = window_sums[i] + e
            cum[i] = cum[i] + e
        if i == 0 or cum[i] > top:
            top = cum[i]
    scale = sa if sa > sr else sr
    if scale < 1.0:
        scale = 1.0
    exc[n] = scale
    return exc, top


class ExcessWindow:
    """The last :data:`WINDOW` steps' excess rows (excess per objective..., scale), oldest
    first, in one flat ring of doubles: ~0.3 KB an episode against ~1.2 KB for ten lists
    of float objects (a detector holds thousands of episodes)."""

    __slots__ = ("filled", "head", "values", "width")

    def __init__(self, width: int) -> None:
        self.width = width  # objectives + 1
        self.values = array("d", bytes(8 * width * WINDOW))
        self.filled = 0
        self.head = 0  # the slot the next row goes to

    def push(self, row: list[float]) -> "array[float] | None":
        """Add ``row``; the row it pushed out (the oldest), once the window is full."""
        start = self.head * self.width
        end = start + self.width
        old = self.values[start:end] if self.filled == WINDOW else None
        self.values[start:end] = array("d", row)
        self.head = (self.head + 1) % WINDOW
        self.filled = min(WINDOW, self.filled + 1)
        return old

    def rows(self) -> list[list[float]]:
        """The rows, oldest first."""
        flat, w = self.values.tolist(), self.width
        if self.filled < WINDOW:  # not wrapped yet: slots 0.. in order
            return [flat[i * w : i * w + w] for i in range(self.filled)]
        rows = [flat[i * w : i * w + w] for i in range(WINDOW)]
        return rows[self.head :] + rows[: self.head]

    def to_state(self) -> list[list[float]]:
        return self.rows()

    def load(self, rows: Sequence[Sequence[float]]) -> None:
        """Resume from :meth:`to_state` output (ValueError when it does not fit)."""
        if len(rows) > WINDOW or any(len(r) != self.width for r in rows):
            raise ValueError("scorer state field 'exc_win' does not fit the window")
        self.values = array("d", bytes(8 * self.width * WINDOW))
        self.filled = self.head = 0
        for row in rows:
            self.push([float(x) for x in row])

    def finite(self) -> bool:
        return math.isfinite(sum(self.values))


def windowed(exc: list[float], window_sums: list[float], window: ExcessWindow) -> float:
    """Slide the window by one step (``exc`` from :func:`excess`, whose excess is already
    in ``window_sums``); the windowed imbalance."""
    n = len(exc) - 1
    window_sums[n] = window_sums[n] + exc[n]
    old = window.push(exc)
    if old is not None:
        for j in range(n + 1):
            window_sums[j] = window_sums[j] - old[j]
    total = window_sums[n]
    return max(window_sums[:n]) / total if total > EPS else 0.0
