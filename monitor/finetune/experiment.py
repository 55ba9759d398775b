"""The sample-efficiency run: train (in a thread), then serve and measure each model."""

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from monitor.analysis.mirror.models import mirror_model
from monitor.finetune.curve import rows
from monitor.finetune.data import Subset
from monitor.finetune.efficiency import EvalPlan, Served, evaluate, sanity_cases
from monitor.finetune.runs import finetune_all, run_dir
from monitor.finetune.train import TrainConfig
from schemas.settings import Settings


async def sample_efficiency(
    args: argparse.Namespace,
    subsets: list[Subset],
    baseline: list[Subset],
    conditions: list[dict[str, Any]],
    config: TrainConfig,
    settings: Settings,
    stop: asyncio.Event,
) -> dict[str, Any]:
    out: Path = args.out
    runs = await asyncio.to_thread(finetune_all, subsets, args.base, out, config, "corrective")
    if baseline:
        runs += await asyncio.to_thread(finetune_all, baseline, args.base, out, config, "innocuous")
    plan = EvalPlan(
        conditions, args.trials, args.steps, args.temperature, args.seed, args.structured
    )
    gguf = mirror_model(args.base).gguf()
    by_k = {s.k: s for s in [*subsets, *baseline]}
    largest = max(subsets, key=lambda s: s.k)
    card = _card(run_dir(out, largest.k, "corrective"))
    base_cases = sanity_cases(largest, card, "corrective")
    base_model = Served("base", "base", 0, None)
    records = [await evaluate(base_model, gguf, plan, base_cases, settings, stop, out)]
    for r in runs:
        if stop.is_set():
            break
        folder = run_dir(out, r["k"], r["variant"])
        served = Served(
            f"{r['variant']}-k{r['k']:03d}", r["variant"], r["k"], folder / "adapter.gguf"
        )
        cases = sanity_cases(by_k[r["k"]], _card(folder), r["variant"])
        record = await evaluate(served, gguf, plan, cases, settings, stop, out)
        records.append(None if record is None else record | {"train": r})
    done = [r for r in records if r is not None]
    base = (rows(done, "base") or [None])[0]
    return {
        "dataset": str(args.dataset),
        "out": str(out),
        "base_model": args.base,
        "train": {
            "epochs": config.epochs,
            "lr": config.lr,
            "rank": config.rank,
            "max_steps": config.max_steps,
            "max_tokens": config.max_tokens,
            "seed": config.seed,
        },
        "heldout_conditions": len(conditions),
        "trials": args.trials,
        "steps": args.steps,
        "base": base,
        "corrective": rows(done, "corrective"),
        "innocuous": rows(done, "innocuous"),
        "runs": [r["train"] for r in done if "train" in r],
        "incomplete": len(done) < len(records),  # others were being evaluated elsewhere
        "interrupted": stop.is_set(),
    }


def _card(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "data_card.json").read_text()))
