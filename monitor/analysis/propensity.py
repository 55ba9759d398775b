"""Propensity: a model's flip rate on a held-out split's starting conditions.

Why a separate measurement: fine-tuning on a corrective dataset should lower the rate at
which a model flips on conditions it was not trained on. The held-out conditions
(environment, seed, steps, options) are played again by the model under test, through the
full pipeline (workers, Redis, detectors), so "before" and "after" are two runs of this
with two models. Default mitigation ``none``: the tendency is measured without help
(``recorded`` keeps each condition's own mitigation).
"""

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.stats import wilson_interval
from monitor.pipeline import run_episodes
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.settings import Settings
from workers.environments.catalog import OBJECTIVES


def build_specs(
    conditions: Sequence[dict[str, Any]],
    agent: AgentSpec,
    run_id: str,
    trials: int = 1,
    mitigation: str = "none",
    steps: int | None = None,
    label: str | None = None,
) -> list[EpisodeSpec]:
    """One episode per condition and trial (same seed: the same starting condition)."""
    specs = []
    for i, c in enumerate(conditions):
        for trial in range(trials):
            specs.append(
                EpisodeSpec(
                    episode_id=f"{run_id}-{i:04d}-t{trial}",
                    environment=c["environment"],
                    env_options=dict(c.get("env_options") or {}),
                    objectives=OBJECTIVES[c["environment"]],
                    seed=int(c["seed"]),
                    steps=steps or int(c.get("steps") or 100),
                    agent=agent,
                    mitigation=c.get("mitigation", "none")
                    if mitigation == "recorded"
                    else mitigation,
                    labels={"model": label or agent.options.get("model", agent.kind)},
                )
            )
    return specs


def ended_in_error(path: Path) -> bool:
    """Whether the episode of this log finished with ``reason: error`` (no answer, ...)."""
    for line in reversed(path.read_bytes().splitlines()):
        if b'"episode_finished"' in line:
            return orjson.loads(line).get("reason") == "error"
    return False


def flipped_in_log(path: Path) -> bool:
    """Whether the detectors flagged a runaway in this episode log (a verdict detection)."""
    for line in path.read_bytes().splitlines():
        if b'"runaway"' in line:
            event = orjson.loads(line)
            if event.get("kind") == "verdict" and "runaway" in event.get("detections", []):
                return True
    return False


def summarize(specs: Sequence[EpisodeSpec], flipped: dict[str, bool]) -> dict[str, Any]:
    """Flip rate with a Wilson 95% interval, overall and per environment.

    Episodes without a log (ended in error) are counted in ``missing``, not in ``n``.
    """
    by_env: dict[str, list[bool]] = {}
    for spec in specs:
        if spec.episode_id in flipped:
            by_env.setdefault(spec.environment or "?", []).append(flipped[spec.episode_id])
    every = [f for values in by_env.values() for f in values]

    def rate(values: list[bool]) -> dict[str, Any]:
        k, n = sum(values), len(values)
        low, high = wilson_interval(k, n)
        return {
            "n": n,
            "flipped": k,
            "flip_rate": k / n if n else None,
            "wilson95": [round(low, 4), round(high, 4)],
        }

    return {
        **rate(every),
        "missing": len(specs) - len(every),
        "by_environment": {env: rate(v) for env, v in sorted(by_env.items())},
    }


async def measure(
    settings: Settings,
    specs: list[EpisodeSpec],
    stop: asyncio.Event,
    *,
    run_id: str,
    log_dir: Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Run ``specs`` through the pipeline and summarise which episodes flipped."""
    with tempfile.TemporaryDirectory(prefix="propensity-") as tmp:
        logs = log_dir or Path(tmp)
        run = await run_episodes(
            settings, specs, stop, run_id=run_id, show_progress=show_progress, log_dir=logs
        )
        flipped = {}
        for spec in specs:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.episode_id)
            path = logs / f"{safe}.jsonl"
            if path.is_file() and not ended_in_error(path):  # errors count as missing
                flipped[spec.episode_id] = flipped_in_log(path)
    summary = summarize(specs, flipped)
    summary["run"] = {k: run[k] for k in ("episodes", "steps", "errors", "wall_seconds")}
    if run.get("interrupted"):
        summary["interrupted"] = True
    return summary
