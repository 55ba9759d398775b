"""``runaway-monitor experiment FILE.yaml``: run (or resume) a grid of episodes.

Results go to ``--out`` (default ``results/<name>``) in the layout of
:mod:`monitor.experiments.layout`. Rerunning the same command resumes: finished episodes
are kept, failed and interrupted ones run again. ``--search optuna`` tunes mitigation
settings instead (see :mod:`monitor.experiments.search`).
"""

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from monitor.cli_settings import settings_from
from monitor.experiments.config import ConfigError, load_config
from monitor.runtime import STOP_GRACE_S, run


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("experiment", help="run or resume a grid of episodes from a YAML file")
    p.add_argument("file", type=Path, metavar="FILE.yaml")
    p.add_argument("--out", type=Path, help="results directory (default: results/<name>)")
    p.add_argument("--json", action="store_true", help="print what ran as one JSON object")
    p.add_argument("--search", choices=("optuna",), help="tune mitigation settings instead")
    p.add_argument("--n-trials", type=int, default=20, help="--search: trials to add")
    p.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        default="minimize",
        help="--search: minimise the flip rate, or maximise it",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / config.name
    if args.search:
        from monitor.experiments.search import run_search

        try:
            report = run_search(
                config,
                out,
                n_trials=args.n_trials,
                direction=args.direction,
                show_progress=not args.json,
            )
        except (ConfigError, ValueError, ValidationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(report) if args.json else _search_text(report))
        return 0
    from monitor.experiments.runner import run_experiment

    text = args.file.read_text()
    try:
        outcome = run(
            lambda stop: run_experiment(
                config, out, stop, config_text=text, show_progress=not args.json
            ),
            grace_s=settings_from().shutdown_grace_s + STOP_GRACE_S,
        )
    except (ConfigError, ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**outcome.as_dict(), "results": str(out)}))
    else:
        print(
            f"{config.name}: {outcome.done_before + outcome.finished}/{outcome.total} episodes "
            f"done ({outcome.finished} now, {outcome.done_before} before), "
            f"{len(outcome.failed)} failed; results in {out}",
            file=sys.stderr,
        )
        for line in outcome.failed[:10]:
            print(f"  failed: {line}", file=sys.stderr)
    if outcome.interrupted:
        return 130
    return 0 if outcome.complete else 1


def _search_text(report: dict[str, object]) -> str:
    best = report.get("best") or {}
    return json.dumps({"study": report.get("storage"), "best": best}, indent=2)
