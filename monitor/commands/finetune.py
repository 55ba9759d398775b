"""``runaway-monitor finetune DATASET --base smollm2 --k 1,2,4 --out DIR``: LoRA per k.

DATASET is a folder ``export-dataset`` wrote (its nested ``train-kNNN.jsonl`` subsets) or
one JSONL file. One adapter per k, each with its configuration, data card and training
curve (see :mod:`monitor.finetune.runs`); finished ks are reused, so a rerun resumes.
``--json`` prints ``{"runs": [{"k", "steps", "seconds", "loss_first", "loss_last",
"adapter", ...}]}``. Needs the ``train`` extra.
"""

import argparse
import json
import sys
from pathlib import Path

from monitor.finetune.data import TrainingDataError, load_subsets


def parse_ks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise ValueError("--k needs positive integers")
    return ks


def add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="smollm2", help="base model (default smollm2)")
    p.add_argument("--k", help="comma-separated subset sizes (default: every subset)")
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the subset (3)")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (5e-4)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (8; alpha = 2 x rank)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="cap on optimiser steps per k")
    p.add_argument(
        "--max-tokens", type=int, default=384, help="token window around the corrected turns (384)"
    )
    p.add_argument(
        "--layers", type=int, help="LoRA on the last N decoder layers only (cheaper steps)"
    )
    p.add_argument("--threads", type=int, help="torch threads")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("finetune", help="LoRA fine-tunes on corrective data, one per k")
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_train_flags(p)
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument(
        "--innocuous",
        action="store_true",
        help="train the innocuous baseline (fixed answer format) instead",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def train_config(args: argparse.Namespace):  # -> TrainConfig (imported lazily: no torch)
    from monitor.finetune.train import TrainConfig

    for name in ("epochs", "lr", "rank", "max_tokens"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    for name in ("max_steps", "layers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    return TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        rank=args.rank,
        alpha=2 * args.rank,
        seed=args.seed,
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        layers=args.layers,
        full=getattr(args, "full", False),
        threads=args.threads,
    )


def main(args: argparse.Namespace) -> int:
    try:
        subsets = load_subsets(args.dataset, parse_ks(args.k))
        config = train_config(args)
    except (TrainingDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from monitor.finetune.runs import finetune_all

    variant = "innocuous" if args.innocuous else "corrective"
    try:
        runs = finetune_all(subsets, args.base, args.out, config, variant)
    except ValueError as exc:  # a window that cannot fit, a model that is not installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"runs": runs}))
    else:
        for r in runs:
            print(
                f"{r['variant']} k={r['k']}: {r['steps']} steps in {r['seconds']:.0f} s, "
                f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, {r['adapter']}"
                + (" (reused)" if r["resumed"] else "")
            )
    return 0
