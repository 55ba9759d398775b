"""Sustained maximising deviation: the runs that raise the runaway flag, and the smoothed
deviation the hazard reads.

An objective's run grows while its two-step deviation ``m_t + m_{t-1}`` is at least 1 and
it ends the step on its runaway side (``out``); any other step ends the run. A run of N
steps raises the flag with its onset at the run's first step.
"""

from detectors.scoring.index import ewma
from detectors.scoring.signals import EPS


def advance_runs(
    m: list[float], prev_m: list[float], out: list[bool], run: list[int]
) -> tuple[int, int, float]:
    """Update each objective's run (in place); ``(longest run, its objective or -1,
    largest two-step deviation, at least 0)``. Ties go to the first objective."""
    best = 0
    best_i = -1
    sustained = 0.0
    for i in range(len(m)):
        d = m[i] + prev_m[i]
        if d > sustained:
            sustained = d
        if d >= 1.0 - EPS and out[i]:
            rn = run[i] = run[i] + 1
            if rn > best:
                best = rn
                best_i = i
        elif run[i]:
            run[i] = 0
    return best, best_i, sustained


def deviation_trends(
    m: list[float], prev_m: list[float], counted: tuple[bool, ...], m_avg: list[float]
) -> tuple[float, float]:
    """Over the ``counted`` objectives (homeostatic and unbounded): ``(largest two-step
    deviation, largest EWMA of m)``, both at least 0; ``m_avg`` is updated in place."""
    dh = 0.0
    top = 0.0
    for i in range(len(m)):
        if counted[i]:
            d = m[i] + prev_m[i]
            if d > dh:
                dh = d
            v = m_avg[i] = ewma(m_avg[i], m[i])
            if v > top:
                top = v
    return dh, top
