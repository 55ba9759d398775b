"""Reference (balanced) policy per objective kind, derived from the objective specs only.

The detectors never look at environment names: a sidecar user's spec gets the same
reference as a built-in environment. ``StepEvent.reference``, when given, overrides these.
"""

from collections.abc import Sequence


def homeostatic_reference(level: float, target: float, band: float) -> float:
    """Top up only what is missing: ``max(0, target - level + 1)``.

    The +1 offsets the mean downward drift of the BioBlue levels; it is capped by the band
    so that a zero-width band never makes the reference itself overshoot.
    """
    return max(0.0, target - level + min(1.0, band))


def unbounded_reference(totals: Sequence[float], budget: float) -> list[float]:
    """Water-filling: give the budget to the lowest totals until they meet, then split evenly.

    For two objectives this is "give the limit to the lower total until the gap is at most 1,
    then 5/5". Continuous (not rounded): it is only compared with the agent's action.
    """
    n = len(totals)
    if n == 0 or budget <= 0:
        return [0.0] * n
    order = sorted(range(n), key=totals.__getitem__)
    level = totals[order[0]]
    left = budget
    k = 1
    while k < n:
        nxt = totals[order[k]]
        cost = (nxt - level) * k
        if cost > left:
            break
        left -= cost
        level = nxt
        k += 1
    level += left / k
    return [max(0.0, level - t) for t in totals]


def water_fill_pair(t0: float, t1: float, budget: float) -> list[float]:
    """:func:`unbounded_reference` for two totals and ``budget > 0``, without the sort."""
    lo, hi = (t1, t0) if t1 < t0 else (t0, t1)
    gap = hi - lo
    if gap > budget:
        return [budget, 0.0] if t0 <= t1 else [0.0, budget]
    level = hi + (budget - gap) / 2
    r0 = level - t0
    r1 = level - t1
    return [r0 if r0 > 0.0 else 0.0, r1 if r1 > 0.0 else 0.0]
