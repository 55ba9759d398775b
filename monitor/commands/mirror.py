"""``runaway-monitor mirror extract|probe|plot``: a mirror model's view of a trajectory.

``extract`` runs an open-weights model over the exact conversation a target model saw (a
BioBlue TSV, a JSONL episode log, or each sample of an Inspect ``.eval`` log) and stores
its hidden states (``--max-steps N``: each trial's first N steps, for a quick run);
``probe`` fits per-layer linear probes on them; ``plot`` draws each trajectory's
projection on the flip direction. See docs/mirror.md. Needs the ``mirror`` extra (torch,
transformers, gguf, scikit-learn) and a model package.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from monitor.analysis.mirror.models import MODELS

if TYPE_CHECKING:
    from monitor.analysis.mirror.extract import ExtractReport


def _layers(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers wants integers like 4,8,12, not {text!r}"
        ) from None
    if not values or values[0] < 0:
        raise argparse.ArgumentTypeError("--layers wants non-negative layer numbers")
    return values


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low``, else a message saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


_positive = _at_least(16)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("mirror", help="a mirror model's hidden states: extract, probe, plot")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    ex = verbs.add_parser("extract", help="hidden states at each step's observation")
    ex.add_argument(
        "trajectories",
        nargs="+",
        type=Path,
        metavar="TRAJ",
        help="BioBlue TSV, JSONL episode log, or Inspect .eval log (one per sample)",
    )
    ex.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    ex.add_argument("--layers", type=_layers, help="hidden-state layers (default: every 4th)")
    ex.add_argument("--window", type=_positive, help="tokens per pass (default: the context)")
    ex.add_argument(
        "--max-steps",
        type=_at_least(1),
        metavar="N",
        help="read only each trial's first N steps (a quick probe run; default: all)",
    )
    ex.add_argument("--threads", type=_at_least(1), help="torch threads (default: torch's)")
    ex.add_argument("--out", type=Path, required=True, metavar="DIR")
    ex.add_argument("--json", action="store_true", help="print the report as JSON")
    ex.set_defaults(func=_extract)
    pr = verbs.add_parser("probe", help="per-layer probes for runaway state and flip-within-10")
    pr.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="extracted states")
    pr.add_argument("--labels", type=Path, required=True, help="labels.tsv of DIR / --train")
    pr.add_argument("--train", type=Path, metavar="DIR", help="train on these states ...")
    pr.add_argument("--test", type=Path, metavar="DIR", help="... and score on these")
    pr.add_argument("--test-labels", type=Path, help="labels of --test (default: --labels)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_probe)
    pl = verbs.add_parser("plot", help="projections on the flip direction, with markers")
    pl.add_argument("dir", type=Path, metavar="DIR")
    pl.add_argument("--labels", type=Path, required=True)
    pl.add_argument("--layers", type=_layers)
    pl.set_defaults(func=_plot)


def _fail(message: str) -> int:
    print(f"mirror: {message}", file=sys.stderr)
    return 2


def _extract(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from monitor.analysis.mirror.extract import extract
    from monitor.analysis.mirror.models import ModelUnavailable
    from monitor.analysis.mirror.reader import MirrorReader
    from monitor.analysis.mirror.store import MirrorStore

    try:
        started = time.perf_counter()
        reader = MirrorReader(args.model, threads=args.threads)
        load_seconds = time.perf_counter() - started
        report = extract(
            args.trajectories,
            reader,
            MirrorStore(args.out),
            args.layers,
            args.window,
            progress=lambda paths: tqdm(paths, desc="mirror", unit="file", file=sys.stderr),
            max_steps=args.max_steps,
        )
    except (ModelUnavailable, ImportError, ValueError) as exc:
        return _fail(str(exc))
    for _path, reason in report.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    summary = extract_summary(report, args.model, load_seconds, args.max_steps)
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        _print_extract(summary, args.out)
    return 0 if report.done or report.cached else 1


def extract_summary(
    report: "ExtractReport", model: str, load_seconds: float, max_steps: int | None
) -> dict[str, Any]:
    """What ``extract --json`` prints: per trajectory, and the seconds per trajectory."""
    from monitor.analysis.mirror.extract import seconds_per_trajectory

    return {
        "model": model,
        "max_steps": max_steps,
        "load_seconds": round(load_seconds, 3),
        "seconds_per_trajectory": seconds_per_trajectory(report),
        "extracted": [
            {
                "trajectory": r.trajectory,
                "steps": len(r.steps),
                "seconds": r.seconds,
                "passes": r.passes,
            }
            for r in report.done
        ],
        "cached": [r.trajectory for r in report.cached],
        "skipped": [{"path": p, "reason": why} for p, why in report.skipped],
    }


def _print_extract(summary: dict[str, Any], out: Path) -> None:
    for row in summary["extracted"]:
        print(f"{row['trajectory']}: {row['steps']} steps in {row['seconds']:.2f} s")
    per = summary["seconds_per_trajectory"]
    timing = f"; {per:.2f} s per trajectory" if per is not None else ""
    print(
        f"{len(summary['extracted'])} extracted, {len(summary['cached'])} cached, "
        f"{len(summary['skipped'])} skipped -> {out}{timing} "
        f"(model loaded in {summary['load_seconds']:.1f} s)"
    )


def _probe(args: argparse.Namespace) -> int:
    from monitor.analysis.mirror.study import ProbeError, run_probe

    try:
        result = run_probe(args.dir, args.labels, args.train, args.test, args.test_labels)
    except (ProbeError, ValueError, OSError) as exc:
        return _fail(str(exc))
    if args.dir is not None:  # kept beside the states, for `report`
        (args.dir / "probe.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        _print_probe(result)
    return 0


def _print_probe(result: dict[str, Any]) -> None:
    def cell(value: Any, ci: list[Any]) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else f"{value:.3f}"

    print(f"{'layer':>5}  {'AUC runaway state':<24} {'AUC flip within 10':<24}")
    for row in result["layers"]:
        print(
            f"{row['layer']:>5}  {cell(row['auc_state'], row['auc_state_ci']):<24} "
            f"{cell(row['auc_within_10'], row['auc_within_10_ci']):<24}"
        )
    print(
        f"hazard (behavioural), flip within 10: "
        f"{cell(result['hazard_auc_within_10'], result['hazard_auc_within_10_ci'])}"
    )


def _plot(args: argparse.Namespace) -> int:
    from detectors.evaluation import parse_labels
    from monitor.analysis.mirror.plot import plot_all
    from monitor.analysis.mirror.store import MirrorStore

    try:
        labels = parse_labels(args.labels.read_text())
        written = plot_all(MirrorStore(args.dir), labels, args.layers)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print(f"{len(written)} plots -> {args.dir / 'plots'}")
    return 0
