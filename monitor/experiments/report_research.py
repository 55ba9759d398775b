"""Report sections of the research tools: the post-flip battery pooled over autopsies,
and the mirror model's probes and flip-direction figures (when they exist)."""

from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.probes import paired_deltas

MIRROR = "mirror"  # RESULTS/mirror: `mirror extract --out`, then `mirror probe`/`plot`


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _with_ci(value: float | None, ci: list[float | None] | None) -> str:
    """``0.91 [0.80, 0.99]``; the value alone where the interval is undefined."""
    if value is None or not ci or None in ci:
        return _f(value)
    return f"{_f(value)} [{_f(ci[0])}, {_f(ci[1])}]"


def battery_section(autopsies: list[dict[str, Any]]) -> list[str]:
    """The pooled pre/post table of the autopsies' batteries (none: no section)."""
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
        cell = _with_ci(row["mean_delta"], row["ci"])
        lines.append(f"| {row['level']} | {row['name']} | {row['n']} | {cell} |")
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
        lines += _probe_table(probe)
    for path in plots[:12]:
        rel = path.relative_to(base) if path.is_relative_to(base) else path
        lines += [f"![mirror projection: {path.stem}]({Path(rel).as_posix()})", ""]
    return lines


def _probe_table(probe: Path) -> list[str]:
    """The per-layer AUC table of ``mirror probe``'s result (a broken file is said so)."""
    try:
        result = orjson.loads(probe.read_bytes())
        body = [_probe_row(row) for row in result["layers"]]
        hazard = _with_ci(result.get("hazard_auc_within_10"), result.get("hazard_auc_within_10_ci"))
    except (
        OSError,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        return [f"`{probe}` could not be read ({type(exc).__name__}: {exc}).", ""]
    return [
        f"Linear probes on {result.get('model')}'s hidden states "
        f"({result.get('mode')}); AUC [95% CI over trajectories].",
        "",
        "| layer | runaway state | flip within 10 |",
        "|---|---|---|",
        *body,
        "",
        f"Behavioural hazard, flip within 10: {hazard}.",
        "",
    ]


def _probe_row(row: dict[str, Any]) -> str:
    state = _with_ci(row.get("auc_state"), row.get("auc_state_ci"))
    within = _with_ci(row.get("auc_within_10"), row.get("auc_within_10_ci"))
    return f"| {row['layer']} | {state} | {within} |"
