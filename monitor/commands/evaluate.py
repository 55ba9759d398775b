"""``runaway-monitor evaluate --labels labels.tsv PATH...``: detectors vs human labels."""

import argparse
import sys
from pathlib import Path

import orjson

from detectors.evaluation import evaluate, parse_labels
from detectors.offline import score_offline
from monitor.trajectories import TrajectoryError, load_trajectory


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="compare detections with labels.tsv")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--labels", required=True, help="labels.tsv (file, runaway, onset_step, ...)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--alert", type=float, default=None, help="hazard alert level (default: the spec's)"
    )
    p.set_defaults(func=run)


def _fmt(x: object) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _hazard_lines(groups: list[tuple[str, dict]]) -> list[str]:
    """Early warning: AUC, Brier score, lead times, and each group's reliability table."""
    alert = groups[0][1]["lead_time"]["alert"]
    lines = [
        f"early warning (hazard: chance a flip begins within 10 steps; alert at {alert}):",
        f"{'group':28} {'AUC':>6} {'Brier':>6} {'base':>6} {'flips':>5} {'warned':>6} "
        f"{'lead med':>8} {'p10':>4} {'p90':>4} {'late':>4} {'never':>5} {'at 1':>4} "
        f"{'false alarms':>12}",
    ]
    for name, g in groups:
        c, lt = g["hazard_calibration"], g["lead_time"]
        alarms = f"{lt['false_alarm_trajectories']}/{lt['unflipped_trajectories']}"
        lines.append(
            f"{name[:28]:28} {_fmt(g['hazard_auc']):>6} {_fmt(c['brier']):>6} "
            f"{_fmt(c['base_rate']):>6} {lt['flips']:>5} {lt['warned']:>6} "
            f"{_fmt(lt['median']):>8} {_fmt(lt['p10']):>4} {_fmt(lt['p90']):>4} "
            f"{lt['late']:>4} {lt['never']:>5} {lt['onset_at_step_1']:>4} {alarms:>12}"
        )
    for name, g in groups:
        lt = g["lead_time"]
        if lt["distribution"]:
            dist = ", ".join(f"{k}: {v}" for k, v in lt["distribution"].items())
            lines.append(f"lead times (steps: flips) {name}: {dist}")
    for name, g in groups:
        table = g["hazard_calibration"]["table"]
        if not table or not g["hazard_samples"]["positive"]:
            continue
        cells = "  ".join(
            f"{r['bin']} n={r['n']} h={r['mean_hazard']:.2f} obs={r['observed']:.2f}" for r in table
        )
        lines.append(f"reliability {name}: {cells}")
    return lines


def format_report(rep: dict) -> str:
    """The human-readable report: overall, per benchmark, disagreements."""
    lines = []
    head = (
        f"{'group':28} {'n':>3} {'flipP':>6} {'flipR':>6} {'F1':>6} {'onset med':>9} "
        f"{'p90':>5} {'lag max':>7} {'siP':>6} {'siR':>6} {'oeP':>6} {'oeR':>6} {'AUC':>6}"
    )
    lines.append(head)
    groups = [("overall", rep["overall"]), *rep["per_benchmark"].items()]
    for name, g in groups:
        f = g["flip"]
        lines.append(
            f"{name[:28]:28} {g['trajectories']:>3} {_fmt(f['precision']):>6} "
            f"{_fmt(f['recall']):>6} {_fmt(f['f1']):>6} {_fmt(g['onset_error']['median']):>9} "
            f"{_fmt(g['onset_error']['p90']):>5} {_fmt(g['detection_lag']['max']):>7} "
            f"{_fmt(g['self_imitation']['precision']):>6} "
            f"{_fmt(g['self_imitation']['recall']):>6} "
            f"{_fmt(g['over_exploitation']['precision']):>6} "
            f"{_fmt(g['over_exploitation']['recall']):>6} {_fmt(g['hazard_auc']):>6}"
        )
    lines += _hazard_lines(groups)
    o = rep["overall"]
    lines.append(f"flips within N steps of onset: {o['detection_lag']['all_within_n']}")
    lines.append(f"disagreements ({len(rep['disagreements'])}):")
    lines += [f"  {d['file']}: {d['what']}" for d in rep["disagreements"]]
    if rep["unlabelled"]:
        lines.append(f"unlabelled ({len(rep['unlabelled'])}): " + ", ".join(rep["unlabelled"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        labels = parse_labels(Path(args.labels).read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {args.labels}: cannot read labels: {exc}", file=sys.stderr)
        return 2
    results = []
    failed = 0
    n, alert = 5, 0.5
    for path in args.paths:
        if Path(path).name == Path(args.labels).name:
            continue
        try:
            traj = load_trajectory(path)
        except TrajectoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        n, alert = traj.spec.detector.n_consecutive, traj.spec.detector.hazard_alert
        results.append(score_offline(traj.spec, traj.events, traj.source, traj.benchmark))
    if args.alert is not None:
        if not 0 < args.alert < 1:
            print("error: --alert: must be between 0 and 1", file=sys.stderr)
            return 2
        alert = args.alert
    rep = evaluate(results, labels, n, alert)
    if args.json:
        sys.stdout.write(orjson.dumps(rep).decode() + "\n")
    else:
        print(format_report(rep))
    return 1 if failed else 0
