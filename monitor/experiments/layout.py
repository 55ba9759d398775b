"""The results directory: the contract ``report``, ``autopsy``, ``export-dataset`` and
``propensity`` read.

```
experiment.yaml    copy of the config
episodes.jsonl     one line per FINISHED episode (an episode is done iff it has a line)
steps.jsonl        one line per step of the finished episodes
logs/<id>.jsonl    the full event log (workers/episode_log.py format)
summary.json       per-cell aggregates
```

Why lines are appended only once an episode's log is on disk, steps first and the
episode line last: a crash at any moment leaves at worst step lines (or a torn last
line) of an episode that is not done; :meth:`Results.clean` drops those before a resume.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

EPISODES = "episodes.jsonl"
STEPS = "steps.jsonl"
LOGS = "logs"
CONFIG = "experiment.yaml"
SUMMARY = "summary.json"
AUTOPSIES = "autopsies"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``path``, skipping a torn (unparseable) line."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


class Results:
    """One results directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.episodes = root / EPISODES
        self.steps = root / STEPS
        self.logs = root / LOGS
        self.config = root / CONFIG
        self.summary = root / SUMMARY

    def log_path(self, episode_id: str) -> Path:
        return self.logs / f"{episode_id}.jsonl"

    def relative_log(self, episode_id: str) -> str:
        return f"{LOGS}/{episode_id}.jsonl"

    def done_ids(self) -> set[str]:
        return {str(e["episode_id"]) for e in read_jsonl(self.episodes) if "episode_id" in e}

    def episode_lines(self) -> list[dict[str, Any]]:
        return [e for e in read_jsonl(self.episodes) if e.get("kind") == "episode"]

    def step_lines(self) -> Iterator[dict[str, Any]]:
        return (s for s in read_jsonl(self.steps) if s.get("kind") == "step")

    def clean(self) -> set[str]:
        """Drop torn lines, repeated episodes and steps of unfinished episodes; return done ids.

        Rewrites a file only when it holds something to drop, via a temporary file and a
        rename, so a crash during the clean loses nothing.
        """
        seen: set[str] = set()
        kept_episodes: list[dict[str, Any]] = []
        for line in read_jsonl(self.episodes):
            eid = line.get("episode_id")
            if line.get("kind") == "episode" and isinstance(eid, str) and eid not in seen:
                seen.add(eid)
                kept_episodes.append(line)
        self._rewrite_if_changed(self.episodes, kept_episodes)
        step_keys: set[tuple[str, int]] = set()
        kept_steps: list[dict[str, Any]] = []
        for line in read_jsonl(self.steps):
            key = (line.get("episode_id"), line.get("step"))
            if key[0] in seen and key not in step_keys:
                step_keys.add(key)  # type: ignore[arg-type]
                kept_steps.append(line)
        self._rewrite_if_changed(self.steps, kept_steps)
        return seen

    @staticmethod
    def _rewrite_if_changed(path: Path, kept: list[dict[str, Any]]) -> None:
        if not path.exists():
            return
        raw = path.read_bytes()
        body = b"".join(orjson.dumps(obj) + b"\n" for obj in kept)
        if body == raw:
            return
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)

    def append(self, steps: list[dict[str, Any]], episode: dict[str, Any]) -> None:
        """Append one finished episode: its step lines, then (making it done) its episode line."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.steps.open("ab") as fh:
            fh.write(b"".join(orjson.dumps(s) + b"\n" for s in steps))
            fh.flush()
        with self.episodes.open("ab") as fh:
            fh.write(orjson.dumps(episode) + b"\n")
            fh.flush()
