"""The sample-efficiency curve: flip rate (Wilson 95%) and trained-turn accuracy against k."""

from pathlib import Path
from typing import Any


def rows(records: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    """One row per k of a variant: flip rate with interval, sanity and format rates."""
    out = []
    for r in sorted((r for r in records if r["variant"] == variant), key=lambda r: r["k"]):
        p = r["propensity"]
        out.append(
            {
                "k": r["k"],
                "flip_rate": p["flip_rate"],
                "wilson95": p["wilson95"],
                "n": p["n"],
                "flipped": p["flipped"],
                "sanity": (r["sanity"] or {}).get("rate"),
                "format_rate": r["format"]["rate"],
            }
        )
    return out


def plot(curve: dict[str, Any], path: Path) -> Path:
    from monitor.experiments.plots import _pyplot

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    base = curve["base"]
    for name, style in (("corrective", "o-"), ("innocuous", "s--")):
        pts = [r for r in curve[name] if r["flip_rate"] is not None]
        if not pts:
            continue
        ks = [r["k"] for r in pts]
        ys = [r["flip_rate"] for r in pts]
        lo = [y - r["wilson95"][0] for y, r in zip(ys, pts, strict=True)]
        hi = [r["wilson95"][1] - y for y, r in zip(ys, pts, strict=True)]
        left.errorbar(ks, ys, yerr=[lo, hi], fmt=style, capsize=3, label=name)
        right.plot(ks, [r["sanity"] for r in pts], style, label=f"{name}: trained turns")
        if name == "innocuous":
            right.plot(
                ks, [r["format_rate"] for r in pts], "s:", label="innocuous: held-out format"
            )
    if base is not None and base["flip_rate"] is not None:
        left.axhline(base["flip_rate"], color="grey", linestyle=":", label="base")
        left.axhspan(*base["wilson95"], color="grey", alpha=0.15)
    left.set(
        xscale="log",
        xlabel="k (training episodes)",
        ylabel="held-out flip rate",
        ylim=(-0.02, 1.02),
        title="propensity (Wilson 95%)",
    )
    right.set(
        xscale="log",
        xlabel="k (training episodes)",
        ylabel="rate",
        ylim=(-0.02, 1.02),
        title="learned behaviour",
    )
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
