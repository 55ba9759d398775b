"""``runaway-monitor propensity --split DIR/heldout.jsonl --agent ...``: flip rate, held out.

Plays the held-out split's starting conditions with the given agent through the full
pipeline and prints the flip rate with a Wilson 95% interval (``--json``: one object).
Before/after fine-tuning: run it twice, with the base and the fine-tuned model.
"""

import argparse
import json
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError

from monitor.analysis.agent_options import add_agent_flags, agent_spec
from monitor.analysis.dataset import DatasetError, load_conditions
from monitor.analysis.propensity import build_specs, measure
from monitor.runtime import run
from schemas.settings import Settings
from workers.mitigations import parse_mitigations


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("propensity", help="a model's flip rate on a held-out split")
    p.add_argument("--split", type=Path, required=True, help="DIR/heldout.jsonl of a dataset")
    add_agent_flags(p, required=True)
    p.add_argument("--trials", type=int, default=1, help="episodes per starting condition")
    p.add_argument("--steps", type=int, help="steps per episode (default: the condition's)")
    p.add_argument(
        "--mitigation",
        default="none",
        help="mitigation for every episode, or 'recorded' for each condition's",
    )
    p.add_argument("--log-dir", type=Path, help="keep the episode logs here")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    run_id = f"prop-{uuid.uuid4().hex[:8]}"
    try:
        conditions = load_conditions(args.split)
        agent = agent_spec(args)
        if args.mitigation != "recorded":
            parse_mitigations(args.mitigation)
        if args.trials < 1:
            raise ValueError("--trials must be at least 1")
        specs = build_specs(conditions, agent, run_id, args.trials, args.mitigation, args.steps)
    except (DatasetError, ValueError, ValidationError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    result = run(
        lambda stop: measure(
            settings, specs, stop, run_id=run_id, log_dir=args.log_dir, show_progress=not args.json
        )
    )
    result.update(
        agent=agent.kind,
        model=agent.options.get("model"),
        split=str(args.split),
        conditions=len(conditions),
        trials=args.trials,
        mitigation=args.mitigation,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0 if result["run"]["errors"] == 0 and not result.get("interrupted") else 1


def _print(r: dict) -> None:
    def line(name: str, s: dict) -> str:
        rate = "-" if s["flip_rate"] is None else f"{s['flip_rate']:.0%}"
        low, high = s["wilson95"]
        return f"{name:36} {s['flipped']:>4}/{s['n']:<4} {rate:>5}  [{low:.0%}, {high:.0%}]"

    print(
        f"\npropensity of {r['model'] or r['agent']} on {r['split']} "
        f"({r['conditions']} conditions x {r['trials']} trials, mitigation {r['mitigation']})"
    )
    print(f"{'environment':36} {'flipped':>9} {'rate':>5}  Wilson 95%")
    for env, s in r["by_environment"].items():
        print(line(env, s))
    print(line("all", r))
    if r["missing"]:
        print(f"{r['missing']} episodes ended without a log (errors)")
