"""The shared results layout, read side: ``RESULTS/episodes.jsonl`` and ``RESULTS/logs/``.

Why: ``autopsy``, ``export-dataset`` and ``report`` all need to find an episode's log and
its summary line; the file names come from :mod:`monitor.experiments.layout`, the one
place that spells out the layout.

    RESULTS/episodes.jsonl              one {"kind": "episode", ...} line per finished episode
    RESULTS/logs/<episode_id>.jsonl     the episode's full event log
    RESULTS/autopsies/<episode_id>.json ``autopsy`` output
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.experiments.layout import AUTOPSIES as AUTOPSIES_DIR
from monitor.experiments.layout import EPISODES as EPISODES_FILE
from monitor.experiments.layout import LOGS as LOGS_DIR


class ResultsError(ValueError):
    """A results directory or episode that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One ``episodes.jsonl`` line, with the log path resolved against the results dir."""

    episode_id: str
    cell: dict[str, Any]
    outcome: str
    steps: int
    flips: int
    first_flip_onset: int | None
    first_flip_detected: int | None
    log: Path
    raw: dict[str, Any]

    @property
    def flipped(self) -> bool:
        return self.flips > 0 or self.first_flip_onset is not None


def read_episodes(results: Path) -> list[EpisodeRecord]:
    """All episode lines of ``results/episodes.jsonl``; the last line per episode id wins.

    A resumed experiment may append an episode again; later lines are newer.
    """
    path = results / EPISODES_FILE
    if not path.is_file():
        raise ResultsError(f"{path}: no such file (is {results} a results directory?)")
    records: dict[str, EpisodeRecord] = {}
    for no, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ResultsError(f"{path}: line {no}: not JSON") from None
        if not isinstance(obj, dict) or obj.get("kind", "episode") != "episode":
            continue
        try:
            episode_id = str(obj["episode_id"])
            log = obj.get("log") or f"{LOGS_DIR}/{episode_id}.jsonl"
            records[episode_id] = EpisodeRecord(
                episode_id=episode_id,
                cell=dict(obj.get("cell") or {}),
                outcome=str(obj.get("outcome", "done")),
                steps=int(obj.get("steps") or 0),
                flips=int(obj.get("flips") or 0),
                first_flip_onset=_opt_int(obj.get("first_flip_onset")),
                first_flip_detected=_opt_int(obj.get("first_flip_detected")),
                log=results / log,
                raw=obj,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{path}: line {no}: bad episode line: {exc}") from None
    return list(records.values())


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def resolve_log(target: Path, episode_id: str | None) -> tuple[Path, Path | None]:
    """``(log path, results dir or None)`` for ``autopsy PATH [EPISODE]``.

    ``PATH`` is a log file, or a results directory with ``EPISODE`` naming the episode.
    """
    if target.is_file():
        results = target.parent.parent if target.parent.name == LOGS_DIR else None
        return target, results
    if not target.is_dir():
        raise ResultsError(f"{target}: no such file or directory")
    if not episode_id:
        raise ResultsError(f"{target} is a directory: name the episode id too")
    for record in read_episodes(target) if (target / EPISODES_FILE).is_file() else []:
        if record.episode_id == episode_id:
            return record.log, target
    log = target / LOGS_DIR / f"{episode_id}.jsonl"
    if log.is_file():
        return log, target
    raise ResultsError(f"{target}: no episode {episode_id!r}")


def autopsy_path(results: Path, episode_id: str) -> Path:
    """Where the autopsy of ``episode_id`` is stored in a results directory."""
    return results / AUTOPSIES_DIR / f"{episode_id}.json"


def read_autopsies(results: Path) -> list[dict[str, Any]]:
    """Every stored autopsy of a results directory (for the report's trigger atlas)."""
    directory = results / AUTOPSIES_DIR
    if not directory.is_dir():
        return []
    return [orjson.loads(p.read_bytes()) for p in sorted(directory.glob("*.json"))]
