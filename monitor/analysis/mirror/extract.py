"""``mirror extract``: hidden states at the end of each step's observation.

Per trajectory: rebuild the conversation (:mod:`.conversation`), plan the passes
(:mod:`.windows`), run each pass once, keep the chosen layers at each observation's last
token, store float16 (:mod:`.store`). A trajectory already in the store under the same
key is not read again. A trajectory that cannot be rebuilt or read is reported and
skipped; the others go on. A file may hold several trajectories (an Inspect ``.eval``
log: one per sample). ``max_steps`` keeps each trial's first steps only.

A record's ``seconds`` is the wall time of its trajectory: the rebuild (its share of
reading the file) and the forward passes; the model's load is not in it.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from monitor.analysis.mirror.conversation import (
    Conversation,
    ConversationError,
    check_max_steps,
    load_conversations,
)
from monitor.analysis.mirror.reader import MirrorReader
from monitor.analysis.mirror.store import MirrorStore, Record, cache_key
from monitor.analysis.mirror.windows import WindowError, plan_windows


def default_layers(n_layers: int) -> list[int]:
    """Every fourth hidden state after the embeddings, and the last."""
    return sorted({*range(4, n_layers + 1, 4), n_layers})


@dataclass(slots=True)
class ExtractReport:
    done: list[Record] = field(default_factory=list)
    cached: list[Record] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _segment_states(
    reader: MirrorReader,
    messages: list,
    observations: dict[int, int],
    layers: list[int],
    window: int,
) -> tuple[dict[int, np.ndarray], int]:
    """step -> [layers, hidden] for one segment, and the number of passes it took."""
    rendered = reader.render(messages)
    ends = rendered.ends
    counts = [ends[0] + 1 if ends[0] >= 0 else 0]
    counts += [ends[i] - max(ends[i - 1], -1) for i in range(1, len(ends))]
    step_of = {index: step for step, index in observations.items()}
    out: dict[int, np.ndarray] = {}
    plan = plan_windows(counts, list(step_of), window)
    for planned in plan:
        part = [messages[i] for i in planned.messages]
        local = reader.render(part) if len(plan) > 1 else rendered
        where = {index: local.ends[j] for j, index in enumerate(planned.messages)}
        positions = [where[index] for index in planned.record]
        states = reader.hidden_states(local.ids, positions, layers)
        for row, index in enumerate(planned.record):
            out[step_of[index]] = states[row]
    return out, len(plan)


def extract_one(
    reader: MirrorReader, conversation: Conversation, layers: list[int], window: int
) -> tuple[np.ndarray, int]:
    states: dict[int, np.ndarray] = {}
    passes = 0
    for segment in conversation.segments:
        got, n = _segment_states(reader, segment.messages, segment.observations, layers, window)
        states.update(got)
        passes += n
    steps = conversation.steps
    return np.stack([states[s] for s in steps]), passes


def _record(
    reader: MirrorReader, conversation: Conversation, layers: list[int], window: int
) -> Record:
    """The index row of ``conversation`` as read by ``reader`` (its cache key included)."""
    return Record(
        conversation.name,
        conversation.source,
        conversation.digest,
        conversation.benchmark,
        reader.name,
        layers,
        conversation.steps,
        cache_key(reader.name, conversation.digest, layers, window),
        conversation.resets,
        conversation.reminders,
    )


def _read_file(
    path: Path, max_steps: int | None
) -> tuple[list[Conversation | ConversationError], float]:
    """The file's trajectories, and the seconds each one's share of reading it took."""
    started = time.perf_counter()
    try:
        found = load_conversations(path, max_steps)
    except ConversationError as exc:
        found = [exc]
    return found, (time.perf_counter() - started) / max(len(found), 1)


def extract(
    paths: Iterable[Path],
    reader: MirrorReader,
    store: MirrorStore,
    layers: list[int] | None = None,
    window: int | None = None,
    progress: Callable[[Iterable[Path]], Iterable[Path]] = lambda x: x,
    max_steps: int | None = None,
) -> ExtractReport:
    """Extract every trajectory of ``paths`` into ``store`` (see the module docstring)."""
    check_max_steps(max_steps)
    layers = layers or default_layers(reader.layers)
    bad = [layer for layer in layers if not 0 <= layer <= reader.layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: {reader.name} has 0..{reader.layers}")
    window = min(window or reader.context, reader.context)
    report = ExtractReport()
    for path in progress(list(paths)):
        found, share = _read_file(path, max_steps)
        for conversation in found:
            if isinstance(conversation, ConversationError):
                report.skipped.append((conversation.source or str(path), str(conversation)))
                continue
            _extract_conversation(reader, store, conversation, layers, window, share, report)
    return report


def _extract_conversation(
    reader: MirrorReader,
    store: MirrorStore,
    conversation: Conversation,
    layers: list[int],
    window: int,
    share: float,
    report: ExtractReport,
) -> None:
    """Read one trajectory (or find it in the cache) and note the outcome in ``report``."""
    record = _record(reader, conversation, layers, window)
    if store.has(record.key):
        store.add(record)
        report.cached.append(record)
        return
    where = str(Path(conversation.source).parent / conversation.name)
    started = time.perf_counter()
    try:
        hidden, passes = extract_one(reader, conversation, layers, window)
    except (WindowError, ValueError) as exc:
        report.skipped.append((where, f"{where}: {exc}"))
        return
    seconds = round(share + time.perf_counter() - started, 6)
    record = replace(record, seconds=seconds, passes=passes)
    store.save(record, hidden)
    report.done.append(record)


def seconds_per_trajectory(report: ExtractReport) -> float | None:
    """The mean wall time of the trajectories read here (None: all cached or skipped)."""
    if not report.done:
        return None
    return round(sum(r.seconds for r in report.done) / len(report.done), 6)
