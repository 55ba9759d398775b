"""Inspect ``.eval`` logs as trajectories: one episode per sample of a BioBlue task.

The BioBlue Inspect task keeps each step's record in the sample's store (under
:data:`monitor.integrations.inspect.bioblue.STORE_KEY`); :func:`sample_events` of the
Inspect report turns them into the same event log an experiment writes (steps, the
detectors' verdicts, the recoveries the monitor applied), which the rebuild re-simulates
like any JSONL episode log. A sample is named ``<file>#<sample id>`` (``@<epoch>`` added
for epochs after the first): the key of ``labels.tsv``.

inspect-ai is imported here, only when an ``.eval`` file is read: the core never needs it.
"""

import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from monitor.analysis.rebuild import LoggedEpisode

SUFFIX = ".eval"
_INSTALL = "reading Inspect .eval logs needs inspect-ai: pip install 'runaway-monitor[inspect]'"


class InspectLogError(ValueError):
    """An ``.eval`` file that cannot be read at all; the message names it and why."""


def is_inspect_log(path: str | Path) -> bool:
    return Path(path).suffix == SUFFIX


def sample_name(path: Path, sample_id: object, epoch: int) -> str:
    """The trajectory name of one sample (see the module docstring)."""
    name = f"{path.name}#{sample_id}"
    return name if epoch <= 1 else f"{name}@{epoch}"


def read_samples(path: Path) -> tuple[str, list[Any]]:
    """The eval's model and its samples; :class:`InspectLogError` says why not."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise InspectLogError(f"{path}: {_INSTALL}") from None
    try:
        log = read_eval_log(str(path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InspectLogError(f"{path}: not a readable Inspect log: {exc}") from None
    if not log.samples:
        raise InspectLogError(f"{path}: the Inspect log holds no samples")
    return log.eval.model, list(log.samples)


def inspect_episodes(path: str | Path) -> list[tuple[str, LoggedEpisode | str]]:
    """Each sample's name and its episode, or why it has none (not a BioBlue sample)."""
    p = Path(path)
    model, samples = read_samples(p)
    try:  # imports inspect_ai too: after read_samples has checked that it is there
        from monitor.integrations.inspect.report import sample_events
    except ImportError as exc:
        raise InspectLogError(f"{p}: {exc}") from None
    out: list[tuple[str, LoggedEpisode | str]] = []
    for sample in samples:
        name = sample_name(p, sample.id, int(sample.epoch))
        try:
            events, _cell = sample_events(sample, model)
        except (ValueError, KeyError, TypeError) as exc:
            out.append((name, str(exc)))
            continue
        spec = events[0].spec
        out.append((name, LoggedEpisode(f"{p}#{sample.id}", spec, events)))
    return out


@cache
def cached_episodes(path: str) -> dict[str, LoggedEpisode]:
    """The usable episodes of an ``.eval`` file by name, read once per process (probes)."""
    return {
        name: episode
        for name, episode in inspect_episodes(path)
        if isinstance(episode, LoggedEpisode)
    }
