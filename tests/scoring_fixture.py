"""The recorded scorer outputs that hold the scoring core bit-identical (tests/data/).

``tests/data/scoring_outputs.jsonl.gz`` holds one JSON line per episode: every
``StepScore`` of the 50 shared BioBlue trials (scored as ``replay --offline`` scores them)
and of a demo run (``runaway-monitor demo --episodes 30 --steps 60 --seed 3 --log-dir``,
through Redis; its logged step and recovery events are stored in the fixture and re-scored
in process, re-armed at every applied recovery as the live detector is). Floats are
written by orjson (the shortest repr, which reads back to the same double), so comparing
the encoded lines compares every field exactly.

Regenerate (only when a change of the scores is intended, and say so in the commit):
``python -m tests.scoring_fixture [--demo-log-dir DIR]``; without a log dir it re-scores
the demo events already in the fixture. Needs ``REDIS_URL`` only to record a new demo.
"""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from detectors.offline import score_offline
from detectors.scoring import EpisodeScorer, StepScore
from monitor.trajectories import load_trajectory
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeStarted, Event, RecoveryApplied, StepEvent
from workers.recordings import BUNDLED_DIR

FIXTURE = Path(__file__).parent / "data" / "scoring_outputs.jsonl.gz"
DEMO_ARGS = ["--episodes", "30", "--steps", "60", "--seed", "3"]
_EVENT: TypeAdapter[Any] = TypeAdapter(Event)
_UNREAD = frozenset(("id", "ts", "text", "usage"))


def encode(score: StepScore) -> list[Any]:
    """Every public field of one score, in a JSON-able, order-preserving form."""
    return [
        score.step,
        score.runaway_index,
        score.hazard,
        list(score.components.items()),
        sorted(score.flags),
        [[d.flag, d.onset_step, d.detected_step, d.mode, d.objective] for d in score.detections],
        score.safe,
        score.savepoint_step,
    ]


def trial_paths() -> list[Path]:
    return sorted(p for p in BUNDLED_DIR.glob("*.tsv") if p.name != "labels.tsv")


def score_trial(path: Path) -> list[list[Any]]:
    """The replay command's offline path: load the trajectory, score it in process."""
    t = load_trajectory(path)
    return [encode(s) for s in score_offline(t.spec, t.events, t.source, t.benchmark).scores]


def score_demo(spec: EpisodeSpec, events: Iterable[Any]) -> list[list[Any]]:
    """Step and recovery events in log order; a recovery re-arms the scorer."""
    scorer = EpisodeScorer(spec)
    out = []
    for ev in events:
        if isinstance(ev, StepEvent):
            out.append(encode(scorer.update(ev)))
        elif isinstance(ev, RecoveryApplied):
            scorer.rearm()
    return out


def demo_from_logs(log_dir: Path) -> Iterator[tuple[str, dict, list[dict]]]:
    """(episode id, spec JSON, step/recovery event JSONs) of every demo log."""
    for path in sorted(log_dir.glob("*.jsonl")):
        spec: dict | None = None
        kept = []
        for line in path.read_bytes().splitlines():
            obj = orjson.loads(line)
            if obj["kind"] == "episode_started":
                spec = obj["spec"]
            elif obj["kind"] in ("step", "recovery_applied"):
                # the scorer reads none of these; they only make the fixture bigger
                kept.append({k: v for k, v in obj.items() if k not in _UNREAD})
        assert spec is not None, path
        yield spec["episode_id"], spec, kept


def demo_inputs(fixture: Path = FIXTURE) -> Iterator[tuple[str, dict, list[dict]]]:
    for rec in read_fixture(fixture):
        if rec["kind"] == "demo":
            yield rec["source"], rec["spec"], rec["events"]


def demo_scores(spec_json: dict, events_json: list[dict]) -> list[list[Any]]:
    spec = EpisodeSpec.model_validate(spec_json)
    events = [_EVENT.validate_python(e) for e in events_json]
    assert not any(isinstance(e, EpisodeStarted) for e in events)
    return score_demo(spec, events)


def read_fixture(fixture: Path = FIXTURE) -> list[dict[str, Any]]:
    with gzip.open(fixture, "rb") as fh:
        return [orjson.loads(line) for line in fh.read().splitlines()]


def record_demo(log_dir: Path) -> None:
    """Run the demo through Redis with its logs written to ``log_dir``."""
    cmd = [sys.executable, "-m", "monitor", "demo", *DEMO_ARGS, "--json", "--log-dir"]
    subprocess.run([*cmd, str(log_dir)], check=True, stdout=subprocess.DEVNULL)


def build(demo: Iterable[tuple[str, dict, list[dict]]]) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    for path in trial_paths():
        recs.append({"kind": "trial", "source": path.name, "scores": score_trial(path)})
    for episode_id, spec, events in demo:
        recs.append(
            {
                "kind": "demo",
                "source": episode_id,
                "spec": spec,
                "events": events,
                "scores": demo_scores(spec, events),
            }
        )
    return recs


def write(recs: list[dict[str, Any]], fixture: Path = FIXTURE) -> None:
    fixture.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    with open(fixture, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--demo-log-dir", type=Path, help="use these demo logs (default: keep)")
    p.add_argument("--record-demo", action="store_true", help="run the demo (needs REDIS_URL)")
    a = p.parse_args()
    if a.record_demo:
        with tempfile.TemporaryDirectory() as tmp:
            record_demo(Path(tmp))
            write(build(list(demo_from_logs(Path(tmp)))))
    elif a.demo_log_dir:
        write(build(list(demo_from_logs(a.demo_log_dir))))
    else:
        write(build(list(demo_inputs())))
    print(f"wrote {FIXTURE} ({os.path.getsize(FIXTURE)} bytes)")


if __name__ == "__main__":
    main()
