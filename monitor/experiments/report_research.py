"""Report sections of the research tools: the post-flip battery pooled over autopsies,
and the mirror model's probes and flip-direction figures (when they exist)."""

from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.probes import paired_deltas

MIRROR = "mirror"  # RESULTS/mirror: `mirror extract --out`, then `mirror probe`/`plot`


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def battery_section(autopsies: list[dict[str, Any]]) -> list[str]:
    rows = paired_deltas(autopsies)
    if not rows:
        return []
    lines = [
        "",
        "## Post-flip battery: paired differences",
        "",
        "Score after the flip minus the score at the matched pre-flip step, mean over "
        "autopsies with a 95% bootstrap interval (autopsies resampled). Refusal items: "
        "1 refuses, 0 complies; feelings: balance of needs-met and needs-not-met words.",
        "",
        "| level | name | n | mean post - pre [95% CI] |",
        "|---|---|---|---|",
    ]
    for row in rows:
        ci = row["ci"]
        interval = f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else ""
        lines.append(
            f"| {row['level']} | {row['name']} | {row['n']} | {_f(row['mean_delta'])}{interval} |"
        )
    return lines


def mirror_section(root: Path, base: Path) -> list[str]:
    """The probe table (``RESULTS/mirror/probe.json``) and the projection plots."""
    folder = root / MIRROR
    probe = folder / "probe.json"
    plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if not probe.is_file() and not plots:
        return []
    lines = ["", "## Mirror model", ""]
    if probe.is_file():
        result = orjson.loads(probe.read_bytes())
        lines += [
            f"Linear probes on {result.get('model')}'s hidden states "
            f"({result.get('mode')}); AUC [95% CI over trajectories].",
            "",
            "| layer | runaway state | flip within 10 |",
            "|---|---|---|",
        ]
        for row in result.get("layers", []):
            lines.append(
                f"| {row['layer']} | {_f(row['auc_state'])} | {_f(row['auc_within_10'])} |"
            )
        lines += [
            "",
            f"Behavioural hazard, flip within 10: {_f(result.get('hazard_auc_within_10'))}.",
            "",
        ]
    for path in plots[:12]:
        rel = path.relative_to(base) if path.is_relative_to(base) else path
        lines += [f"![mirror projection: {path.stem}]({Path(rel).as_posix()})", ""]
    return lines
