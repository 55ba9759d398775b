"""Loading recorded trajectories for replay, evaluate and plot (I/O at the edge).

Two formats: BioBlue TSV (the benchmark format is detected from the header by
:mod:`workers.recordings`) and the project's own JSONL episode logs (one wire event per
line: an ``episode_started`` carrying the spec, then ``step`` events, optionally
``recovery_applied``).
"""

from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.episode import EpisodeSpec
from schemas.events import EpisodeStarted, Event, RecoveryApplied, StepEvent
from workers.recordings import Recording, RecordingError, read_tsv

_EVENT = TypeAdapter(Event)


class TrajectoryError(ValueError):
    """A file that cannot be used; the message names the file and the reason."""


@dataclass
class Trajectory:
    source: str
    benchmark: str
    spec: EpisodeSpec
    events: list[StepEvent]
    recoveries: list[int] = field(default_factory=list)  # steps at which recovery applied
    recording: Recording | None = None


def _load_jsonl(path: Path) -> Trajectory:
    spec: EpisodeSpec | None = None
    steps: list[StepEvent] = []
    recoveries: list[int] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read: {exc}") from None
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if isinstance(obj, dict) and "event" in obj and "kind" not in obj:
                obj = obj["event"]
            ev = _EVENT.validate_python(obj)
        except (orjson.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0][:120]
            raise TrajectoryError(f"{path}: line {no}: not an episode event: {first}") from None
        if isinstance(ev, EpisodeStarted) and spec is None:
            spec = ev.spec
        elif isinstance(ev, StepEvent):
            steps.append(ev)
        elif isinstance(ev, RecoveryApplied):
            recoveries.append(ev.step)
    if spec is None:
        raise TrajectoryError(f"{path}: no episode_started event with the episode spec")
    if not steps:
        raise TrajectoryError(f"{path}: no step events")
    steps.sort(key=lambda e: e.step)
    bench = spec.labels.get("benchmark") or spec.environment or "unknown"
    return Trajectory(str(path), bench, spec, steps, recoveries)


def load_trajectory(path: str | Path) -> Trajectory:
    """Read one trajectory file; :class:`TrajectoryError` says which file and why."""
    from workers.recordings import events_from_recording

    p = Path(path)
    if not p.is_file():
        raise TrajectoryError(f"{p}: no such file")
    if p.suffix in (".jsonl", ".json", ".ndjson"):
        return _load_jsonl(p)
    try:
        rec = read_tsv(p)
        spec, events = events_from_recording(rec)
    except RecordingError as exc:
        raise TrajectoryError(str(exc)) from None
    except (KeyError, ValidationError) as exc:
        raise TrajectoryError(f"{p}: unusable recording: {exc}") from None
    return Trajectory(str(p), rec.benchmark, spec, events, [], rec)
