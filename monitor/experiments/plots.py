"""The report's figures (matplotlib, Agg): flip rate per mitigation, onsets, RI over time.

Why one function per figure taking plain numbers: the report decides what to aggregate;
these only draw, so a figure can be redrawn from ``summary.json`` without the steps.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def flip_rate_bars(
    rates: Mapping[str, Mapping[str, tuple[float, float, float]]], path: Path
) -> Path:
    """Grouped bars: mitigation on x, one bar per model; ``(rate, lo, hi)`` with Wilson bars."""
    plt = _pyplot()
    mitigations = sorted({m for by_m in rates.values() for m in by_m})
    models = sorted(rates)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(mitigations) * max(1, len(models))), 4))
    for k, model in enumerate(models):
        xs, ys, err_lo, err_hi = [], [], [], []
        for i, mitigation in enumerate(mitigations):
            if mitigation in rates[model]:
                rate, lo, hi = rates[model][mitigation]
                xs.append(i + (k - (len(models) - 1) / 2) * width)
                ys.append(rate)
                err_lo.append(rate - lo)
                err_hi.append(hi - rate)
        ax.bar(xs, ys, width, yerr=[err_lo, err_hi], capsize=3, label=model, color=f"C{k}")
    ax.set_xticks(range(len(mitigations)), mitigations, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("flip rate (95% Wilson CI)")
    ax.legend(title="model", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def onset_distributions(onsets: Mapping[str, Sequence[int]], path: Path) -> Path:
    """Box plot plus the points: first-flip onset step per mitigation."""
    plt = _pyplot()
    names = sorted(onsets)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4))
    data = [list(onsets[n]) for n in names]
    if any(data):
        ax.boxplot([d or [float("nan")] for d in data], showfliers=False)
        for i, d in enumerate(data, start=1):
            ax.scatter([i] * len(d), d, s=10, alpha=0.5, color="C3")
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    ax.set_ylabel("onset step of the first flip")
    ax.set_title("flip onsets (flipped episodes only)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ri_over_time(curves: Mapping[str, Mapping[int, float]], path: Path) -> Path:
    """Mean Runaway Index per step, one line per mitigation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, name in enumerate(sorted(curves)):
        steps = sorted(curves[name])
        ax.plot(steps, [curves[name][s] for s in steps], label=name, color=f"C{k}")
    ax.set_xlabel("step")
    ax.set_ylabel("mean Runaway Index")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(title="mitigation", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
