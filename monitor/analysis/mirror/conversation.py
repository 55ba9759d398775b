"""The exact conversation a target model saw, rebuilt from a recorded trajectory.

Why segments: with a full context and no recovery, the context shown at step ``s`` is a
prefix of the one shown at ``s + 1``, so one causal forward pass over the last context
yields, at each observation's end, the very hidden state the mirror would have had
reading what the target read at that step. A recovery (a restored savepoint, a reminder)
or a short context window breaks that chain; each unbroken run of steps is a *segment*
and gets its own pass. Pure: no model, no I/O beyond reading the file.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.analysis.rebuild import LoggedEpisode, RebuildError, load_episode_log, replay
from monitor.trajectories import TrajectoryError, load_trajectory
from schemas.events import EpisodeStarted, RecoveryApplied
from workers.agents.base import Message


class ConversationError(ValueError):
    """A trajectory that cannot be rebuilt; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class Segment:
    """Messages read in one pass, and the index of each step's observation message."""

    messages: list[Message]
    observations: dict[int, int]  # step -> index into messages


@dataclass(frozen=True, slots=True)
class Conversation:
    source: str
    name: str  # the file name: the key of labels.tsv
    benchmark: str
    digest: str  # sha256 of the segments' messages: the cache key's trajectory part
    segments: list[Segment]
    resets: list[int] = field(default_factory=list)  # steps at which a recovery applied
    reminders: list[int] = field(default_factory=list)  # steps whose context got a reminder

    @property
    def steps(self) -> list[int]:
        return sorted(s for seg in self.segments for s in seg.observations)


def _episode(path: Path) -> tuple[LoggedEpisode, str]:
    """A BioBlue TSV or JSONL episode log as a :class:`LoggedEpisode` and its benchmark."""
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        episode = load_episode_log(path)
        spec = episode.spec
        return episode, spec.labels.get("benchmark") or spec.environment or "unknown"
    trajectory = load_trajectory(path)
    started = EpisodeStarted(episode_id=trajectory.spec.episode_id, spec=trajectory.spec)
    return LoggedEpisode(str(path), trajectory.spec, [started, *trajectory.events]), (
        trajectory.benchmark
    )


def _is_prefix(prefix: list[Message], messages: list[Message]) -> bool:
    return len(prefix) <= len(messages) and messages[: len(prefix)] == prefix


def build_segments(episode: LoggedEpisode) -> tuple[list[Segment], list[int]]:
    """Segments of prefix-chained contexts, and the steps whose context had a reminder."""
    views = replay(episode).views
    segments: list[Segment] = []
    transcript: list[Message] = []
    observations: dict[int, int] = {}
    reminders: list[int] = []
    for step in sorted(views):
        view = views[step]
        if observations and not _is_prefix(transcript, view.messages):
            segments.append(Segment(transcript, observations))
            observations = {}
        observations[step] = len(view.messages) - 1
        transcript = view.history_after()
        if view.refs and view.refs[-1].reminder:
            reminders.append(step)
    if observations:
        segments.append(Segment(transcript, observations))
    return segments, reminders


def digest_of(segments: list[Segment]) -> str:
    blob = orjson.dumps([[seg.messages, sorted(seg.observations.items())] for seg in segments])
    return hashlib.sha256(blob).hexdigest()


def load_conversation(path: str | Path) -> Conversation:
    """Rebuild ``path``'s conversation; :class:`ConversationError` says why it cannot."""
    p = Path(path)
    try:
        episode, benchmark = _episode(p)
        segments, reminders = build_segments(episode)
    except (TrajectoryError, RebuildError, ValueError, KeyError) as exc:
        raise ConversationError(f"{p}: cannot rebuild the conversation: {exc}") from None
    if not segments:
        raise ConversationError(f"{p}: no steps")
    resets = [e.step for e in episode.events if isinstance(e, RecoveryApplied)]
    return Conversation(
        source=str(p),
        name=p.name,
        benchmark=benchmark,
        digest=digest_of(segments),
        segments=segments,
        resets=resets,
        reminders=reminders,
    )
