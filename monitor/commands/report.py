"""``runaway-monitor report RESULTS``: a Markdown report (tables and figures) of an experiment."""

import argparse
import sys
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("report", help="write a Markdown report of an experiment's results")
    p.add_argument("results", type=Path, metavar="RESULTS", help="an experiment's results dir")
    p.add_argument("--out", type=Path, help="report file (default: RESULTS/report.md)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from monitor.experiments.report import write_report

    if not args.results.is_dir():
        print(f"error: {args.results}: not a directory", file=sys.stderr)
        return 2
    try:
        path = write_report(args.results, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
