"""``runaway-monitor report RESULTS``: a Markdown report (tables and figures) of an experiment."""

import argparse
import sys
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("report", help="write a Markdown report of an experiment's results")
    p.add_argument(
        "results",
        type=Path,
        metavar="RESULTS",
        help="an experiment's results dir, or Inspect .eval logs (a file or a dir of them)",
    )
    p.add_argument("--out", type=Path, help="report file (default: RESULTS/report.md)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from monitor.experiments.report import write_report

    if not args.results.exists():
        print(f"error: {args.results}: no such file or directory", file=sys.stderr)
        return 2
    try:
        root = args.results
        if _inspect_logs(root):
            root = _from_inspect(root)
        path = write_report(root, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _inspect_logs(path: Path) -> bool:
    """Inspect .eval logs rather than an experiment's results directory."""
    if path.is_file():
        return path.suffix == ".eval"
    return not (path / "episodes.jsonl").exists() and any(path.glob("*.eval"))


def _from_inspect(path: Path) -> Path:
    """The results directory made from the logs (``<logs dir>/runaway-report``)."""
    try:
        from monitor.integrations.inspect.report import eval_logs, results_from_evals
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    root = (path.parent if path.is_file() else path) / "runaway-report"
    results_from_evals(eval_logs(path), root)
    return root
