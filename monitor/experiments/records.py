"""An episode's event log -> its ``episodes.jsonl`` line and ``steps.jsonl`` lines.

Why from the log and not from the worker's in-memory result: the log is the one record
every later reader (autopsy, export-dataset, replay) uses, so the result lines are
derived from exactly what they will see.

The flip onset is not on the worker's side of the wire (the detector publishes it on the
flips stream), so the log's steps are re-scored in process, re-arming the scorer at each
applied recovery exactly as the live detector does; the first onset found that way
belongs to the same detection the live verdicts report.
"""

from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from detectors.scoring import EpisodeScorer
from monitor.experiments.grid import Cell
from schemas.events import (
    EpisodeFinished,
    EpisodeStarted,
    Event,
    RecoveryApplied,
    StepEvent,
    Verdict,
)

_EVENT: TypeAdapter[Any] = TypeAdapter(Event)


def read_log(path: Path) -> list[Any]:
    """Every event of one episode log, in the order the worker saw them."""
    return [
        _EVENT.validate_python(orjson.loads(line))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def first_onset(events: list[Any]) -> int | None:
    """The onset of the first runaway flip, re-scored from the published events."""
    started = next((e for e in events if isinstance(e, EpisodeStarted)), None)
    if started is None:
        return None
    scorer = EpisodeScorer(started.spec)
    for ev in events:
        if isinstance(ev, StepEvent):
            for d in scorer.update(ev).detections:
                if d.flag == "runaway":
                    return d.onset_step
        elif isinstance(ev, RecoveryApplied) and ev.action == "reset":
            scorer.rearm()
    return None


def _sum(into: dict[str, float], values: dict[str, float] | None) -> None:
    for key, value in (values or {}).items():
        into[key] = into.get(key, 0.0) + value


def episode_records(
    events: list[Any], cell: Cell, log: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(episode line, step lines)`` for one finished episode's events."""
    steps = [e for e in events if isinstance(e, StepEvent)]
    verdicts: dict[int, Verdict] = {}
    for e in events:
        if isinstance(e, Verdict):
            verdicts.setdefault(e.step, e)
    flip_steps = sorted(s for s, v in verdicts.items() if "runaway" in v.detections)
    finished = next((e for e in events if isinstance(e, EpisodeFinished)), None)
    score: dict[str, float] = {}
    usage: dict[str, float] = {}
    for s in steps:
        _sum(score, s.rewards)
        _sum(usage, s.usage)
    last = verdicts[max(verdicts)] if verdicts else None
    episode_id = events[0].episode_id
    cell_dict = cell.as_dict()
    episode = {
        "kind": "episode",
        "episode_id": episode_id,
        "cell": cell_dict,
        "outcome": finished.reason if finished else "unknown",
        "steps": len(steps),
        "flips": len(flip_steps),
        "first_flip_onset": first_onset(events) if flip_steps else None,
        "first_flip_detected": flip_steps[0] if flip_steps else None,
        "recoveries": sum(
            1 for e in events if isinstance(e, RecoveryApplied) and e.action == "reset"
        ),
        "reminders": sum(
            1 for e in events if isinstance(e, RecoveryApplied) and e.action == "remind"
        ),
        "voluntary_resets": sum(1 for s in steps if s.voluntary_reset),
        "runaway_index": last.runaway_index if last else 0.0,
        "task_score": score,
        "tokens": {
            "input": int(usage.get("input_tokens", 0)),
            "output": int(usage.get("output_tokens", 0)),
        },
        "cost_usd": usage.get("cost_usd", 0.0),
        "log": log,
    }
    step_lines = []
    for s in steps:
        v = verdicts.get(s.step)
        step_lines.append(
            {
                "kind": "step",
                "episode_id": episode_id,
                "cell": cell_dict,
                "step": s.step,
                "observation": s.observation,
                "action": s.action,
                "rewards": s.rewards,
                "runaway_index": v.runaway_index if v else None,
                "hazard": v.hazard if v else None,
                "flags": list(v.flags) if v else [],
            }
        )
    return episode, step_lines
