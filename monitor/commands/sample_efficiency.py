"""``runaway-monitor sample-efficiency DATASET --out DIR --k 1,2,4,8``: the seed's curve.

Fine-tunes (or reuses) one corrective adapter per k and one innocuous-baseline adapter per
k with the same training budget, serves each through llama.cpp's OpenAI-compatible route,
and measures the sanity check and the held-out propensity before (base) and after. Writes
``OUT/curve.json`` and ``OUT/curve.png``; see :mod:`monitor.finetune.efficiency`. Needs the
``train`` extra and llama-cpp-python's server (scripts/prepare-smollm.sh).
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.dataset import HELDOUT, DatasetError, load_conditions
from monitor.commands.finetune import add_train_flags, parse_ks, train_config
from monitor.finetune.data import TrainingDataError, load_subsets
from monitor.runtime import run
from schemas.settings import Settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("sample-efficiency", help="flip rate against k, tuned vs base vs baseline")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a folder export-dataset wrote")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_train_flags(p)
    p.add_argument("--baseline-k", help="ks of the innocuous baseline (default: --k; '' none)")
    p.add_argument("--conditions", type=int, help="use only the first N held-out conditions")
    p.add_argument("--trials", type=int, default=1, help="episodes per held-out condition")
    p.add_argument("--steps", type=int, help="steps per held-out episode")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument(
        "--structured",
        default="auto",
        choices=["auto", "off", "json_object"],
        help="answer mode of the held-out episodes (auto: llama.cpp's JSON grammar; off: "
        "plain text, where the baseline's format can show but SmolLM2 often fails to answer)",
    )
    p.add_argument("--json", action="store_true", help="print curve.json on stdout")
    p.set_defaults(func=main)


def _plan(args: argparse.Namespace) -> tuple[list, list, list, Any]:
    if not args.dataset.is_dir():
        raise DatasetError(f"{args.dataset}: sample-efficiency needs the dataset folder")
    subsets = load_subsets(args.dataset, parse_ks(args.k))
    baseline_ks = parse_ks(args.baseline_k) if args.baseline_k else []
    baseline = (
        load_subsets(args.dataset, baseline_ks)
        if baseline_ks
        else []
        if args.baseline_k == ""
        else subsets
    )
    conditions = load_conditions(args.dataset / HELDOUT)[: args.conditions]
    if args.trials < 1 or (args.conditions is not None and args.conditions < 1):
        raise ValueError("--trials and --conditions must be at least 1")
    return subsets, baseline, conditions, train_config(args)


def main(args: argparse.Namespace) -> int:
    try:
        subsets, baseline, conditions, config = _plan(args)
    except (TrainingDataError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from monitor.finetune.experiment import sample_efficiency

    started = time.perf_counter()
    curve = run(
        lambda stop: sample_efficiency(
            args, subsets, baseline, conditions, config, Settings(), stop
        )
    )
    curve["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_bytes(orjson.dumps(curve, option=orjson.OPT_INDENT_2))
    from monitor.finetune.curve import plot

    plot(curve, args.out / "curve.png")
    if args.json:
        print(json.dumps(curve))
    else:
        _print(curve)
    return 1 if curve.get("interrupted") else 0


def _print(curve: dict[str, Any]) -> None:
    def cell(r: dict[str, Any]) -> str:
        lo, hi = r["wilson95"]
        rate = "-" if r["flip_rate"] is None else f"{r['flip_rate']:.0%}"
        sanity = "-" if r.get("sanity") is None else f"{r['sanity']:.0%}"
        return f"{rate:>5} [{lo:.0%}, {hi:.0%}] n={r['n']:<3} trained-turns {sanity}"

    if curve["base"] is not None:
        print(f"base            {cell(curve['base'])}")
    for name in ("corrective", "innocuous"):
        for r in curve[name]:
            extra = f" format {r['format_rate']:.0%}" if name == "innocuous" else ""
            print(f"{name:10} k={r['k']:<3} {cell(r)}{extra}")
    if curve.get("incomplete"):
        print("incomplete: other processes were evaluating some models; rerun to assemble")
    print(f"curve: {curve['out']}/curve.json, curve.png ({curve['seconds']:.0f} s)")
