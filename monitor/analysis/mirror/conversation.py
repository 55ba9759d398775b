"""The exact conversation a target model saw, rebuilt from a recorded trajectory.

Why segments: with a full context and no recovery, the context shown at step ``s`` is a
prefix of the one shown at ``s + 1``, so one causal forward pass over the last context
yields, at each observation's end, the very hidden state the mirror would have had
reading what the target read at that step. A recovery (a restored savepoint, a reminder)
or a short context window breaks that chain; each unbroken run of steps is a *segment*
and gets its own pass. Pure: no model, no I/O beyond reading the file.

A BioBlue TSV or a JSONL episode log is one trajectory; an Inspect ``.eval`` log holds
one per sample (:mod:`.inspect_log`). ``max_steps`` cuts a trial to its first steps, as if
it had ended there (a quick probe run): the rebuild is causal, so those steps' contexts
are exactly the full trial's.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.analysis.mirror.inspect_log import InspectLogError, inspect_episodes, is_inspect_log
from monitor.analysis.rebuild import LoggedEpisode, RebuildError, load_episode_log, replay
from monitor.trajectories import TrajectoryError, load_trajectory
from schemas.events import EpisodeFinished, EpisodeStarted, RecoveryApplied
from workers.agents.base import Message


class ConversationError(ValueError):
    """A trajectory that cannot be rebuilt; the message names the file and the reason."""

    def __init__(self, message: str, source: str = "") -> None:
        super().__init__(message)
        self.source = source  # the file, or ``file#sample`` for one sample of an eval log


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


def check_max_steps(max_steps: int | None) -> None:
    """Refuse a cut that would leave no step (a caller's mistake, said plainly)."""
    if max_steps is not None and (isinstance(max_steps, bool) or max_steps < 1):
        raise ValueError(f"max_steps must be a whole number of at least 1, not {max_steps!r}")


def first_steps(episode: LoggedEpisode, max_steps: int | None) -> LoggedEpisode:
    """The episode as if it had ended after step ``max_steps`` (None: all of it)."""
    if max_steps is None:
        return episode
    kept = [e for e in episode.events if e.step <= max_steps and not isinstance(e, EpisodeFinished)]
    return LoggedEpisode(episode.source, episode.spec, kept)


def conversation_of(
    episode: LoggedEpisode, source: str, name: str, benchmark: str, max_steps: int | None = None
) -> Conversation:
    """The conversation of one parsed episode; :class:`ConversationError` says why not."""
    where = str(Path(source).parent / name)  # the file, or ``file#sample``
    episode = first_steps(episode, max_steps)
    try:
        segments, reminders = build_segments(episode)
    except (RebuildError, ValueError, KeyError) as exc:
        raise ConversationError(f"{where}: cannot rebuild the conversation: {exc}", where) from None
    if not segments:
        raise ConversationError(f"{where}: no steps", where)
    return Conversation(
        source=source,
        name=name,
        benchmark=benchmark,
        digest=digest_of(segments),
        segments=segments,
        resets=[e.step for e in episode.events if isinstance(e, RecoveryApplied)],
        reminders=reminders,
    )


def load_conversation(path: str | Path, max_steps: int | None = None) -> Conversation:
    """Rebuild the conversation of a one-trajectory file (a BioBlue TSV, a JSONL log);
    :class:`ConversationError` says why it cannot."""
    check_max_steps(max_steps)
    p = Path(path)
    if is_inspect_log(p):
        raise ConversationError(
            f"{p}: an Inspect log holds samples: use load_conversations", str(p)
        )
    try:
        episode, benchmark = _episode(p)
    except (TrajectoryError, RebuildError, ValueError, KeyError) as exc:
        raise ConversationError(f"{p}: cannot rebuild the conversation: {exc}", str(p)) from None
    return conversation_of(episode, str(p), p.name, benchmark, max_steps)


def load_conversations(
    path: str | Path, max_steps: int | None = None
) -> list[Conversation | ConversationError]:
    """Every trajectory in ``path``: one for a TSV or JSONL file, one per sample of an
    Inspect ``.eval`` log. A sample that cannot be rebuilt is its error, in its place (the
    others go on); a file that cannot be read at all raises :class:`ConversationError`."""
    check_max_steps(max_steps)
    p = Path(path)
    if not is_inspect_log(p):
        return [load_conversation(p, max_steps)]
    try:
        episodes = inspect_episodes(p)
    except InspectLogError as exc:
        raise ConversationError(str(exc), str(p)) from None
    out: list[Conversation | ConversationError] = []
    for name, episode in episodes:
        if isinstance(episode, str):
            where = str(p.parent / name)
            out.append(ConversationError(f"{where}: {episode}", where))
            continue
        benchmark = episode.spec.environment or "unknown"
        try:
            out.append(conversation_of(episode, str(p), name, benchmark, max_steps))
        except ConversationError as exc:
            out.append(exc)
    return out
