"""The probe study behind ``mirror probe``: load stores and labels, probe every layer,
score the behavioural hazard on the same steps."""

from functools import cache
from pathlib import Path
from typing import Any

from detectors.evaluation import Label, parse_labels
from detectors.offline import score_offline
from monitor.analysis.mirror.inspect_log import cached_episodes, is_inspect_log
from monitor.analysis.mirror.probe import Rows, gather, hazard_within, probe_layer
from monitor.analysis.mirror.store import MirrorStore, Record
from monitor.trajectories import load_trajectory


class ProbeError(ValueError):
    """The probe cannot run; the message says what to fix."""


@cache
def _hazards(source: str, name: str) -> dict[int, float]:
    if is_inspect_log(source):
        episode = cached_episodes(source).get(name)
        if episode is None:
            raise ProbeError(f"{source}: no usable sample {name!r} (was the log rewritten?)")
        spec, steps = episode.spec, episode.steps
    else:
        trajectory = load_trajectory(source)
        spec, steps = trajectory.spec, trajectory.events
    result = score_offline(spec, steps, keep_scores=True)
    return {score.step: float(score.hazard) for score in result.scores}


def hazard_of(record: Record) -> dict[int, float]:
    """The detectors' hazard per step of the record's trajectory (its source file, or its
    sample of an Inspect log)."""
    return _hazards(record.source, record.trajectory)


def _load(directory: Path, labels_path: Path) -> tuple[MirrorStore, list[Record], dict[str, Label]]:
    store = MirrorStore(directory)
    records = store.records()
    if not records:
        raise ProbeError(f"{directory}: no extracted trajectories (run `mirror extract`)")
    try:
        labels = parse_labels(labels_path.read_text())
    except (OSError, KeyError, ValueError) as exc:
        raise ProbeError(f"{labels_path}: not a labels file: {exc}") from None
    return store, records, labels


def run_probe(
    directory: Path | None,
    labels: Path,
    train: Path | None = None,
    test: Path | None = None,
    test_labels: Path | None = None,
) -> dict[str, Any]:
    if (train is None) != (test is None):
        raise ProbeError("give --train and --test together")
    source = train or directory
    if source is None:
        raise ProbeError("give DIR, or --train and --test")
    store, records, known = _load(source, labels)
    held: tuple[MirrorStore, list[Record], dict[str, Label]] | None = None
    if test is not None:
        held = _load(test, test_labels or labels)
    layers = sorted(set.intersection(*(set(r.layers) for r in records)))
    rows_out: list[dict[str, Any]] = []
    hazard_rows: Rows | None = None
    for layer in layers:
        train_rows = gather(store, records, known, layer, hazard_of)
        test_rows = gather(*held[:2], held[2], layer, hazard_of) if held else None
        result = probe_layer(train_rows, test_rows)
        hazard_rows = test_rows or train_rows
        rows_out.append(
            {
                "layer": layer,
                "auc_state": result["state"]["auc"],
                "auc_state_ci": result["state"]["ci"],
                "auc_within_10": result["within"]["auc"],
                "auc_within_10_ci": result["within"]["ci"],
                "steps": result["state"]["n"],
                "positives_state": result["state"]["positives"],
                "positives_within_10": result["within"]["positives"],
            }
        )
    assert hazard_rows is not None
    hz = hazard_within(hazard_rows)
    return {
        "model": records[0].model,
        "mode": "train-test" if held else "grouped-cv",
        "trajectories": len(records) if not held else {"train": len(records), "test": len(held[1])},
        "layers": rows_out,
        "hazard_auc_within_10": hz["auc"],
        "hazard_auc_within_10_ci": hz["ci"],
    }
