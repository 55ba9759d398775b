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
    p.set_defaults(func=run)


def _fmt(x: object) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def format_report(rep: dict) -> str:
    """The human-readable report: overall, per benchmark, disagreements."""
    lines = []
    head = (
        f"{'group':28} {'n':>3} {'flipP':>6} {'flipR':>6} {'F1':>6} {'onset med':>9} "
        f"{'p90':>5} {'lag max':>7} {'siP':>6} {'siR':>6} {'AUC':>6}"
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
            f"{_fmt(g['self_imitation']['recall']):>6} {_fmt(g['hazard_auc']):>6}"
        )
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
    n = 5
    for path in args.paths:
        if Path(path).name == Path(args.labels).name:
            continue
        try:
            traj = load_trajectory(path)
        except TrajectoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        n = traj.spec.detector.n_consecutive
        results.append(score_offline(traj.spec, traj.events, traj.source, traj.benchmark))
    rep = evaluate(results, labels, n)
    if args.json:
        sys.stdout.write(orjson.dumps(rep).decode() + "\n")
    else:
        print(format_report(rep))
    return 1 if failed else 0
