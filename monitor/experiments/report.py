"""``report``: a Markdown report of a results directory, with its figures.

It opens with a mitigation leaderboard (pooled over models and environments, ranked by
flip rate, then task score), then per-cell tables and the figures, so a researcher can
paste it into a paper. Everything is recomputed from ``episodes.jsonl`` and
``steps.jsonl``: the report never trusts a stale ``summary.json``.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from monitor.analysis.atlas import aggregate_atlas, render_atlas_markdown
from monitor.analysis.results import read_autopsies
from monitor.experiments import early_warning, plots
from monitor.experiments.layout import Results
from monitor.experiments.report_research import battery_section, mirror_section
from monitor.experiments.stats import group

FIGURES = "figures"


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _rate(agg: dict[str, Any]) -> str:
    lo, hi = agg["flip_rate_ci"]
    return f"{_f(agg['flip_rate'])} [{_f(lo)}, {_f(hi)}]"


def _mean(m: dict[str, float | None], digits: int = 1) -> str:
    if m["lo"] is None:
        return _f(m["mean"], digits)
    return f"{_f(m['mean'], digits)} [{_f(m['lo'], digits)}, {_f(m['hi'], digits)}]"


def _onset(agg: dict[str, Any]) -> str:
    o = agg["onset"]
    if o["median"] is None:
        return "–"
    return f"{_f(o['median'], 1)} ({_f(o['q1'], 1)}–{_f(o['q3'], 1)}), n={o['n']}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def leaderboard(by_mitigation: dict[tuple[str, ...], dict[str, Any]]) -> list[tuple[str, dict]]:
    """Mitigations ranked by flip rate (lowest first), then mean task score (highest first)."""
    items = [(k[0], v) for k, v in by_mitigation.items()]
    return sorted(
        items,
        key=lambda kv: (kv[1]["flip_rate"], -(kv[1]["task_score_total"]["mean"] or 0.0), kv[0]),
    )


def _curves(results: Results) -> dict[str, dict[int, float]]:
    """Mean RI per step per mitigation, streaming over steps.jsonl."""
    sums: dict[str, dict[int, list[float]]] = {}
    for s in results.step_lines():
        if s.get("runaway_index") is None:
            continue
        acc = sums.setdefault(s["cell"]["mitigation"], {}).setdefault(int(s["step"]), [0.0, 0])
        acc[0] += float(s["runaway_index"])
        acc[1] += 1
    return {m: {step: a[0] / a[1] for step, a in by.items()} for m, by in sums.items()}


def _autopsies(autopsies: list[dict[str, Any]]) -> list[str]:
    """Flip autopsies stored with the results (``runaway-monitor autopsy``) and their atlas."""
    if not autopsies:
        return []
    lines = [
        "",
        "## Flip autopsies",
        "",
        "Per flipped episode: the message whose removal moved the flipping action most "
        "(leave-one-out), and the post-flip answer to the first probe.",
        "",
    ]
    rows = []
    for a in autopsies:
        top = (a.get("leave_one_out") or {}).get("messages") or [{}]
        best = top[0]
        probes = a.get("probes") or {}
        post = (probes.get("post") or [{}])[0] if isinstance(probes, dict) else {}
        answer = str(post.get("answer", "–")).replace("|", "/").replace("\n", " ")[:80]
        rows.append(
            [
                f"`{a.get('episode_id', '?')}`",
                str(a.get("environment", "–")),
                str((a.get("flip") or {}).get("onset_step", "–")),
                f"step {best.get('step', '–')} {best.get('role', '')}".strip(),
                ", ".join(best.get("kinds") or []) or "–",
                _f(best.get("influence")),
                answer,
            ]
        )
    lines += _table(
        [
            "episode",
            "environment",
            "flip onset",
            "most influential message",
            "its kinds",
            "influence",
            "post-flip probe answer",
        ],
        rows,
    )
    return [*lines, "", render_atlas_markdown(aggregate_atlas(autopsies))]


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write ``report.md`` (default ``root/report.md``) and ``figures/*.png`` beside it."""
    results = Results(root)
    episodes = results.episode_lines()
    if not episodes:
        raise ValueError(f"{root}: no finished episodes in {results.episodes.name}")
    out = out or root / "report.md"
    figures = out.parent / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    by_cell = group(episodes, results.step_lines(), ("model", "environment", "mitigation"))
    by_mitigation = group(episodes, results.step_lines(), ("mitigation",))
    by_model_mitigation = group(episodes, [], ("model", "mitigation"))
    name = _experiment_name(results)
    lines = [f"# Experiment report: {name}", ""]
    seeds = sorted({e["cell"]["seed"] for e in episodes})
    lines += [
        f"{len(episodes)} finished episodes: {len({k[0] for k in by_cell})} model(s), "
        f"{len({k[1] for k in by_cell})} environment(s), {len(by_mitigation)} mitigation(s), "
        f"{len(seeds)} seed(s). Intervals are 95%: Wilson score intervals for flip rates, "
        "normal approximation for means.",
        "",
        "## Mitigation leaderboard",
        "",
        "Pooled over models and environments; ranked by flip rate (lowest first), then by "
        "task score (all reward signals summed per episode; highest first).",
        "",
    ]
    rows = [
        [
            str(rank),
            f"`{m}`",
            str(a["episodes"]),
            _rate(a),
            _mean(a["task_score_total"]),
            _f(a["mean_ri"], 3),
            _f(a["recoveries_per_episode"]),
            _f(a.get("reminders_per_episode")),
        ]
        for rank, (m, a) in enumerate(leaderboard(by_mitigation), start=1)
    ]
    lines += _table(
        [
            "rank",
            "mitigation",
            "episodes",
            "flip rate [95% CI]",
            "task score [95% CI]",
            "mean RI",
            "resets / episode",
            "reminders / episode",
        ],
        rows,
    )
    lines += [
        "",
        "## Per cell",
        "",
        "Flip: the detectors raised the runaway flag at least once. Onset: the step at "
        "which the first flip's sustained runaway began (median, IQR, over flipped "
        "episodes). Mean RI: over all steps.",
        "",
    ]
    rows = [
        [
            model,
            env,
            f"`{mit}`",
            str(a["episodes"]),
            _rate(a),
            _onset(a),
            _f(a["mean_ri"], 3),
            f"{a['recoveries']} ({_f(a['recoveries_per_episode'])}/ep)",
            f"{a.get('reminders', 0)} ({_f(a.get('reminders_per_episode'))}/ep)",
        ]
        for (model, env, mit), a in by_cell.items()
    ]
    lines += _table(
        [
            "model",
            "environment",
            "mitigation",
            "n",
            "flip rate [95% CI]",
            "onset median (IQR)",
            "mean RI",
            "resets",
            "reminders",
        ],
        rows,
    )
    lines += [
        "",
        "## Task score per objective",
        "",
        "Sum of each reward signal over an episode, mean [95% CI] over seeds.",
        "",
    ]
    for env in sorted({k[1] for k in by_cell}):
        cells = {k: v for k, v in by_cell.items() if k[1] == env}
        signals = sorted({s for v in cells.values() for s in v["task_score"]})
        lines += [f"### {env}", ""]
        rows = [
            [
                model,
                f"`{mit}`",
                *(_mean(a["task_score"][s]) if s in a["task_score"] else "–" for s in signals),
            ]
            for (model, _, mit), a in cells.items()
        ]
        lines += [*_table(["model", "mitigation", *signals], rows), ""]
    lines += early_warning.section(episodes, results.step_lines())
    lines += _figures(results, figures, by_model_mitigation, episodes, out.parent)
    autopsies = read_autopsies(root)
    lines += _autopsies(autopsies)
    lines += battery_section(autopsies)
    lines += mirror_section(root, out.parent)
    out.write_text("\n".join(lines) + "\n")
    return out


def _figures(
    results: Results,
    figures: Path,
    by_model_mitigation: dict[tuple[str, ...], dict[str, Any]],
    episodes: list[dict[str, Any]],
    base: Path,
) -> list[str]:
    rates: dict[str, dict[str, tuple[float, float, float]]] = {}
    for (model, mit), a in by_model_mitigation.items():
        rates.setdefault(model, {})[mit] = (a["flip_rate"], *a["flip_rate_ci"])
    onsets: dict[str, list[int]] = {}
    for e in episodes:
        values = onsets.setdefault(e["cell"]["mitigation"], [])
        if e.get("first_flip_onset") is not None:
            values.append(e["first_flip_onset"])
    drawn = [
        (
            "Flip rate per mitigation (bars: 95% Wilson CI)",
            plots.flip_rate_bars(rates, figures / "flip_rate.png"),
        ),
        (
            "Onset of the first flip per mitigation",
            plots.onset_distributions(onsets, figures / "onsets.png"),
        ),
        (
            "Mean Runaway Index over time per mitigation",
            plots.ri_over_time(_curves(results), figures / "ri_over_time.png"),
        ),
    ]
    out = ["## Figures", ""]
    for title, path in drawn:
        out += [f"![{title}]({path.relative_to(base).as_posix()})", "", f"*{title}.*", ""]
    return out


def _experiment_name(results: Results) -> str:
    try:
        return str(yaml.safe_load(results.config.read_text()).get("name") or results.root.name)
    except (OSError, yaml.YAMLError, AttributeError):
        return results.root.name
