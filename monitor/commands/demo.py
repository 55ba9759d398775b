"""``runaway-monitor demo``: the whole pipeline on many concurrent episodes, with a summary."""

import argparse
import json
import sys
import uuid
from pathlib import Path

from monitor.cli_settings import settings_from
from monitor.pipeline import print_summary, run_episodes
from monitor.runtime import STOP_GRACE_S, run
from workers.jobs import demo_specs


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a mix of episodes")
    p.add_argument("--episodes", type=int, default=200, help="episodes (default 200)")
    p.add_argument("--steps", type=int, default=100, help="steps per episode (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-dir", type=Path, help="write one JSONL log per episode here")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.steps < 1:
        print("error: --episodes and --steps must be at least 1", file=sys.stderr)
        return 2
    settings = settings_from()
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    specs = demo_specs(args.episodes, args.steps, run_id, args.seed)
    summary = run(
        lambda stop: run_episodes(
            settings,
            specs,
            stop,
            run_id=run_id,
            show_progress=not args.json,
            log_dir=args.log_dir,
        ),
        grace_s=settings.shutdown_grace_s + STOP_GRACE_S,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["errors"] == 0 and not summary.get("interrupted") else 1
