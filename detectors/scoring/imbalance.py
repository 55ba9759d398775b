"""Goal imbalance: how lopsidedly the agent serves its objectives, windowed and cumulative.

Per step, each objective's *excess* is the action volume given beyond its reference,
``max(0, a_i - ref_i)``, and the step's scale is ``max(1, sum a, sum ref)``. The windowed
imbalance is the largest objective's excess over the last :data:`WINDOW` steps divided
by the scales of those steps; the cumulative one is the largest cumulative excess divided
by all scales so far. Both are in [0, 1]; a balanced agent's are 0.
"""

from collections import deque
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


def windowed(exc: list[float], window_sums: list[float], window: deque[list[float]]) -> float:
    """Slide the window by one step (``exc`` from :func:`excess`, whose excess is already
    in ``window_sums``); the windowed imbalance."""
    n = len(exc) - 1
    window_sums[n] = window_sums[n] + exc[n]
    if len(window) == WINDOW:
        old = window[0]
        for j in range(n + 1):
            window_sums[j] = window_sums[j] - old[j]
    window.append(exc)
    total = window_sums[n]
    return max(window_sums[:n]) / total if total > EPS else 0.0
