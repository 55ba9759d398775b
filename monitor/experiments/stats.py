"""Per-cell aggregates of an experiment (``summary.json``, the report's tables).

A *cell* here is (model, environment, mitigation) pooled over seeds: the seeds are the
trials a rate is estimated from. Why Wilson intervals for flip rates: with the few dozen
trials per cell an experiment affords, rates near 0 or 1 are common, where the normal
approximation gives intervals outside [0, 1] or of zero width.
"""

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

Z95 = 1.959964
GroupKey = tuple[str, ...]
CELL_FIELDS = ("model", "environment", "mitigation")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float], z: float = Z95) -> dict[str, float | None]:
    """Mean with a normal-approximation 95% interval (``None`` bounds below 2 values)."""
    if not values:
        return {"mean": None, "lo": None, "hi": None}
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "lo": None, "hi": None}
    half = z * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


def median_iqr(values: Sequence[float]) -> dict[str, float | None]:
    """Median and quartiles (inclusive method); ``None`` with no values."""
    if not values:
        return {"median": None, "q1": None, "q3": None}
    if len(values) == 1:
        return {"median": float(values[0]), "q1": float(values[0]), "q3": float(values[0])}
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": med, "q1": q1, "q3": q3}


def total_score(episode: dict[str, Any]) -> float:
    """All reward signals of an episode added up: the one number the leaderboard ranks by."""
    return float(sum(episode.get("task_score", {}).values()))


def aggregate(episodes: Sequence[dict[str, Any]], ri_values: Sequence[float]) -> dict[str, Any]:
    """Flip rate (Wilson), onset median/IQR, task score per objective, RI, recoveries."""
    n = len(episodes)
    flipped = sum(1 for e in episodes if e["flips"] > 0)
    lo, hi = wilson(flipped, n)
    signals = sorted({k for e in episodes for k in e.get("task_score", {})})
    onsets = [e["first_flip_onset"] for e in episodes if e.get("first_flip_onset") is not None]
    return {
        "episodes": n,
        "flipped": flipped,
        "flip_rate": flipped / n if n else None,
        "flip_rate_ci": [lo, hi],
        "flips": sum(e["flips"] for e in episodes),
        "onset": {**median_iqr(onsets), "n": len(onsets)},
        "task_score": {
            s: mean_ci([e["task_score"].get(s, 0.0) for e in episodes]) for s in signals
        },
        "task_score_total": mean_ci([total_score(e) for e in episodes]),
        "mean_ri": statistics.fmean(ri_values) if ri_values else None,
        "final_ri": statistics.fmean(e["runaway_index"] for e in episodes) if n else None,
        "recoveries": sum(e["recoveries"] for e in episodes),
        "recoveries_per_episode": sum(e["recoveries"] for e in episodes) / n if n else None,
        "reminders": sum(e.get("reminders", 0) for e in episodes),
        "reminders_per_episode": (sum(e.get("reminders", 0) for e in episodes) / n if n else None),
        "voluntary_resets": sum(e.get("voluntary_resets", 0) for e in episodes),
        "tokens": {
            "input": sum(e.get("tokens", {}).get("input", 0) for e in episodes),
            "output": sum(e.get("tokens", {}).get("output", 0) for e in episodes),
        },
        "cost_usd": sum(e.get("cost_usd", 0.0) for e in episodes),
        "outcomes": _count(e["outcome"] for e in episodes),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def group(
    episodes: Sequence[dict[str, Any]], steps: Iterable[dict[str, Any]], fields: Sequence[str]
) -> dict[GroupKey, dict[str, Any]]:
    """Aggregates keyed by the ``cell`` values of ``fields`` (steps read once, streaming)."""
    by_key: dict[GroupKey, list[dict[str, Any]]] = {}
    for e in episodes:
        by_key.setdefault(tuple(str(e["cell"][f]) for f in fields), []).append(e)
    ri: dict[GroupKey, list[float]] = {k: [] for k in by_key}
    for s in steps:
        key = tuple(str(s["cell"][f]) for f in fields)
        if key in ri and s.get("runaway_index") is not None:
            ri[key].append(float(s["runaway_index"]))
    return {k: aggregate(v, ri[k]) for k, v in sorted(by_key.items())}


def summarise(
    episodes: Sequence[dict[str, Any]], steps: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """``summary.json``: one entry per cell (model, environment, mitigation)."""
    cells = group(episodes, steps, CELL_FIELDS)
    return {
        "episodes": len(episodes),
        "cells": [{**dict(zip(CELL_FIELDS, k, strict=True)), **v} for k, v in cells.items()],
    }
