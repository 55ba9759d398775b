"""``mirror plot``: each trajectory's projection on the flip direction, with markers.

One PNG per trajectory (``DIR/plots/<trajectory>.png``; a sample ``x.eval#seed-1`` of an
Inspect log gets ``x_seed-1.png``): a line per layer, a vertical line
at the labelled onset (flip), and markers at resets and reminders. The directions are
saved beside (``DIR/directions.npz``) for the report.
"""

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detectors.evaluation import Label
from monitor.analysis.mirror.direction import flip_direction, projection
from monitor.analysis.mirror.store import MirrorStore, Record


def plot_all(
    store: MirrorStore, labels: dict[str, Label], layers: Sequence[int] | None = None
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = store.records()
    if not records:
        raise ValueError(f"{store.root}: no extracted trajectories (run `mirror extract`)")
    chosen = list(layers or records[0].layers)
    directions = {layer: flip_direction(store, records, labels, layer) for layer in chosen}
    usable = {layer: d for layer, d in directions.items() if d is not None}
    if not usable:
        raise ValueError("no labelled flipped trajectory: the flip direction is undefined")
    np.savez(store.root / "directions.npz", **{f"layer_{k}": v for k, v in usable.items()})
    out_dir = store.root / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for record in records:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for layer, direction in usable.items():
            ax.plot(record.steps, projection(store, record, layer, direction), label=f"L{layer}")
        _markers(ax, record, labels.get(record.trajectory))
        ax.set_xlabel("step")
        ax.set_ylabel("projection on flip direction")
        ax.set_title(record.trajectory[:80], fontsize=8)
        ax.legend(fontsize=7, ncol=4, loc="upper left")
        fig.tight_layout()
        path = out_dir / f"{plot_stem(record.trajectory)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def plot_stem(trajectory: str) -> str:
    """A file stem for ``trajectory`` that is unique per sample and safe in a Markdown link."""
    base, _, sample = trajectory.partition("#")
    stem = Path(base).stem
    return f"{stem}_{re.sub(r'[^A-Za-z0-9._-]+', '_', sample)}" if sample else stem


def _markers(ax: object, record: Record, label: Label | None) -> None:
    if label is not None and label.runaway and label.onset_step is not None:
        ax.axvline(label.onset_step, color="red", linestyle="--", label="flip")  # type: ignore[attr-defined]
    for step in record.resets:
        ax.axvline(step, color="purple", linestyle=":", label="reset")  # type: ignore[attr-defined]
    for step in record.reminders:
        ax.axvline(step, color="green", linestyle=":", alpha=0.6, label="remind")  # type: ignore[attr-defined]
