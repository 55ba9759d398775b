"""``runaway-monitor export-dataset RESULTS --out DIR``: corrective fine-tuning data.

From the flipped episodes of an experiment: OpenAI chat JSONL where every turn from the
flip onset on carries the reference policy's action, in nested subsets of k = 1, 2, 4,
... training episodes, plus a held-out split of new environments or seeds, and
``manifest.json``. See :mod:`monitor.analysis.dataset` and :mod:`monitor.analysis.splits`.
"""

import argparse
import sys
from pathlib import Path

from monitor.analysis.dataset import export_dataset
from monitor.analysis.results import ResultsError, read_episodes
from monitor.analysis.splits import SplitRule, default_rule


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("export-dataset", help="corrective fine-tuning JSONL from flipped episodes")
    p.add_argument("results", type=Path, metavar="RESULTS")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--heldout-envs", help="comma-separated held-out environments ('' for none)")
    p.add_argument("--heldout-seeds", help="comma-separated held-out seeds ('' for none)")
    p.add_argument("--seed", type=int, default=0, help="order of episodes in the subsets")
    p.add_argument(
        "--all-weights",
        action="store_true",
        help="train on the pre-flip turns too (weight 1 everywhere)",
    )
    p.set_defaults(func=main)


def _rule(args: argparse.Namespace, results: Path) -> SplitRule:
    default = default_rule(read_episodes(results))
    envs = default.heldout_environments
    seeds = default.heldout_seeds
    if args.heldout_envs is not None:
        envs = frozenset(e.strip() for e in args.heldout_envs.split(",") if e.strip())
    if args.heldout_seeds is not None:
        try:
            seeds = frozenset(int(s) for s in args.heldout_seeds.split(",") if s.strip())
        except ValueError:
            raise ValueError("--heldout-seeds takes comma-separated integers") from None
    return SplitRule(envs, seeds)


def main(args: argparse.Namespace) -> int:
    try:
        rule = _rule(args, args.results)
        report = export_dataset(args.results, args.out, rule, args.seed, args.all_weights)
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = report.manifest
    print(m["split_rule"]["description"])
    print(
        f"training pool: {len(m['train_pool'])} flipped episodes; subsets: "
        + ", ".join(f"k={s['k']} ({s['file']})" for s in m["subsets"])
    )
    held = m["heldout"]
    print(
        f"held out: {len(held['episodes'])} examples, "
        f"{len(held['conditions'])} starting conditions ({held['file']})"
    )
    for skipped in report.skipped:
        print(f"skipped {skipped['episode_id']}: {skipped['reason']}", file=sys.stderr)
    print(f"written to {args.out}")
    return 0
