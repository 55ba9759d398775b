"""The run summary printed by ``demo`` and ``run``."""

from collections.abc import Sequence
from typing import Any

from workers.runner import EpisodeResult


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize(
    results: Sequence[EpisodeResult], wall_s: float, deadletters: int = 0, job_errors: int = 0
) -> dict[str, Any]:
    steps = sum(r.steps for r in results)
    lags_ms = [lag * 1000 for r in results for lag in r.lags_s]
    by_outcome: dict[str, int] = {}
    episodes_by_env: dict[str, int] = {}
    steps_by_env: dict[str, int] = {}
    for r in results:
        by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + 1
        episodes_by_env[r.environment] = episodes_by_env.get(r.environment, 0) + 1
        steps_by_env[r.environment] = steps_by_env.get(r.environment, 0) + r.steps
    errors = by_outcome.get("error", 0) + deadletters + job_errors
    return {
        "episodes": len(results),
        "steps": steps,
        "flips": sum(r.flips for r in results),
        "recoveries": sum(r.recoveries for r in results),
        "reminders": sum(r.reminders for r in results),
        "self_imitation": sum(r.self_imitation for r in results),
        "over_exploitation": sum(r.over_exploitation for r in results),
        "episodes_flipped": sum(1 for r in results if r.flips),
        "invalid_answers": sum(r.invalid_answers for r in results),
        "wall_seconds": round(wall_s, 3),
        "steps_per_second": round(steps / wall_s, 1) if wall_s > 0 else 0.0,
        "detection_lag_ms_p50": round(percentile(lags_ms, 50), 3),
        "detection_lag_ms_p99": round(percentile(lags_ms, 99), 3),
        "errors": errors,
        "outcomes": by_outcome,
        "episodes_by_environment": episodes_by_env,
        "steps_by_environment": steps_by_env,
    }
