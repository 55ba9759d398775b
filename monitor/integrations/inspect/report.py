"""Inspect ``.eval`` logs of the runaway tasks as a results directory, for ``report``.

Each sample of a ``runaway_monitor/<environment>`` eval becomes one finished episode:
its steps (kept by the BioBlue loop in the sample's store) are re-scored by the
detectors' scorer (re-armed at each recovery the monitor applied), and written as the
``episodes.jsonl`` / ``steps.jsonl`` / ``logs/`` lines an experiment writes, so
``runaway-monitor report`` reads both the same way.
"""

from pathlib import Path
from typing import Any

import orjson

from detectors.scoring import EpisodeScorer
from monitor.experiments.grid import Cell
from monitor.experiments.layout import Results
from monitor.experiments.records import episode_records
from monitor.integrations.inspect.bioblue import STORE_KEY
from monitor.integrations.inspect.episodes import bioblue_step, sample_spec
from monitor.integrations.inspect.recovery import LINK_KEY
from schemas.events import EpisodeFinished, EpisodeStarted, RecoveryApplied, Verdict


def eval_logs(path: Path) -> list[Path]:
    """The ``.eval`` files named by ``path`` (a file, or a directory holding them)."""
    if path.is_file():
        return [path]
    return sorted(path.glob("*.eval"))


def sample_events(sample: Any, model: str) -> tuple[list[Any], Cell]:
    """The event log of one sample, rebuilt from its step records."""
    spec, bioblue = sample_spec(sample.uuid, dict(sample.metadata or {}), {"model": model})
    if not bioblue:
        raise ValueError("not a runaway_monitor task's sample (no runaway_environment)")
    records = sample.store.get(STORE_KEY, [])
    recoveries = set((sample.store.get(LINK_KEY) or {}).get("recoveries", []))
    events: list[Any] = [EpisodeStarted(episode_id=spec.episode_id, spec=spec)]
    scorer = EpisodeScorer(spec)
    for record in records:
        step = bioblue_step(spec.episode_id, record)
        score = scorer.update(step)
        events.append(step)
        events.append(
            Verdict(
                episode_id=spec.episode_id,
                step=step.step,
                verdict="continue",
                savepoint_step=score.savepoint_step,
                runaway_index=score.runaway_index,
                hazard=score.hazard,
                flags=sorted(score.flags),
                detections=[d.flag for d in score.detections],
                step_ts=step.ts,
            )
        )
        if step.step in recoveries:
            scorer.rearm()
            events.append(
                RecoveryApplied(
                    episode_id=spec.episode_id,
                    step=step.step,
                    command_id=f"inspect-{step.step}",
                    savepoint_step=score.savepoint_step,
                    messages_dropped=0,
                )
            )
    reason = "error" if sample.error else "done"
    events.append(EpisodeFinished(episode_id=spec.episode_id, step=len(records), reason=reason))
    cell = Cell(
        model=model,
        environment=spec.environment or "custom",
        mitigation=spec.mitigation,
        seed=spec.seed,
    )
    return events, cell


def results_from_evals(paths: list[Path], root: Path) -> int:
    """Write the samples of these logs under ``root`` as finished episodes; how many."""
    from inspect_ai.log import read_eval_log

    results = Results(root)
    for name in (results.episodes, results.steps):
        name.unlink(missing_ok=True)
    results.logs.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in paths:
        log = read_eval_log(str(path))
        for sample in log.samples or []:
            if not (sample.metadata or {}).get("runaway_environment"):
                continue
            events, cell = sample_events(sample, log.eval.model)
            episode_id = events[0].episode_id
            body = b"".join(orjson.dumps(e.model_dump(mode="json")) + b"\n" for e in events)
            results.log_path(episode_id).write_bytes(body)
            episode, steps = episode_records(events, cell, results.relative_log(episode_id))
            results.append(steps, episode)
            count += 1
    if not count:
        raise ValueError("no samples of runaway_monitor tasks in " + ", ".join(map(str, paths)))
    return count
