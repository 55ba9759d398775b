"""One fine-tune per k, each in its own folder, resumable: what ``finetune`` runs.

A run's folder (``OUT/k008``, or ``OUT/innocuous-k008`` for the baseline) holds
``run.json`` (configuration, dataset file and digest, steps, seconds, first and last loss),
``data_card.json`` (episodes used, token counts per example), ``curve.json`` (the loss of
every step), ``adapter/`` (peft's files) and ``adapter.gguf`` (llama.cpp's LoRA format).
``run.json`` is written last: a folder without it is unfinished and is trained again; one
with it and the same configuration and data is reused (so an interrupted sweep resumes at
the first unfinished k).
"""

import hashlib
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from monitor.finetune.data import Subset, innocuous_examples
from monitor.finetune.train import TrainConfig

RUN = "run.json"


def run_dir(out: Path, k: int, variant: str) -> Path:
    return out / (f"k{k:03d}" if variant == "corrective" else f"{variant}-k{k:03d}")


def _digest(examples: list[list[dict[str, Any]]]) -> str:
    return hashlib.sha256(orjson.dumps(examples, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _identity(subset: Subset, base: str, config: TrainConfig, variant: str) -> dict[str, Any]:
    return {
        "base": base,
        "variant": variant,
        "k": subset.k,
        "dataset": str(subset.path),
        "data_sha256": _digest(subset.examples),
        "config": asdict(config) | {"threads": None},
    }


def finished(folder: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved run when ``folder`` holds a finished run of this identity."""
    try:
        saved = orjson.loads((folder / RUN).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    same = all(saved.get(key) == value for key, value in identity.items())
    return dict(saved) if same else None


def summary(saved: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The ``--json`` line of one run."""
    return {
        "k": saved["k"],
        "variant": saved["variant"],
        "steps": saved["steps"],
        "seconds": saved["seconds"],
        "loss_first": saved["loss_first"],
        "loss_last": saved["loss_last"],
        "adapter": str(folder / "adapter"),
        "gguf": str(folder / "adapter.gguf"),
        "resumed": saved.get("resumed", False),
    }


def finetune_all(
    subsets: list[Subset],
    base: str,
    out: Path,
    config: TrainConfig,
    variant: str = "corrective",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train (or reuse) one adapter per subset; the base is loaded once, only if needed."""
    out.mkdir(parents=True, exist_ok=True)
    loaded: tuple[Any, Any] | None = None
    results = []
    for subset in subsets:
        if variant == "innocuous":
            subset = Subset(
                subset.k, subset.path, innocuous_examples(subset.examples), subset.episodes
            )
        folder = run_dir(out, subset.k, variant)
        identity = _identity(subset, base, config, variant)
        saved = finished(folder, identity)
        if saved is not None:
            results.append(summary(saved | {"resumed": True}, folder))
            continue
        if loaded is None:
            from monitor.finetune.train import load_base

            loaded = load_base(base, config.threads)
        saved = _train_one(subset, loaded, folder, config, identity, progress)
        results.append(summary(saved, folder))
        if config.full:  # full fine-tuning changed the base itself
            loaded = None
    return results


def _train_one(
    subset: Subset,
    loaded: tuple[Any, Any],
    folder: Path,
    config: TrainConfig,
    identity: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    from tqdm import tqdm

    from monitor.finetune.gguf_lora import write_gguf_adapter
    from monitor.finetune.train import save, train, wrap_lora
    from monitor.finetune.windows import split_turns, window

    tokenizer, base_model = loaded
    windows, card = [], []
    for messages, episode in zip(subset.examples, subset.episodes, strict=True):
        system, turns = split_turns(tokenizer, messages)
        w = window(system, turns, config.max_tokens)
        windows.append(w)
        card.append(
            {
                "episode": episode,
                "conversation_tokens": len(system) + sum(len(t.ids) for t in turns),
                "window_tokens": len(w.ids),
                "trained_tokens": w.trained_tokens,
                "trained_turns": w.targets,
                "window_messages": [w.first + 1, w.last + 1],
            }
        )
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    import torch

    torch.manual_seed(config.seed)
    model = base_model if config.full else wrap_lora(base_model, config)
    bar = tqdm(
        total=config.steps_for(len(windows)),
        desc=f"{identity['variant']} k={subset.k}",
        file=sys.stderr,
        disable=not progress,
        unit="step",
    )

    def tick(step: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.3f}")
        bar.update(1)

    try:
        result = train(model, windows, config, on_step=tick)
    finally:
        bar.close()
    save(model, tokenizer, folder / "adapter", config.full)
    if not config.full:
        write_gguf_adapter(folder / "adapter", folder / "adapter.gguf", base_model.config)
        model.unload()  # the LoRA layers leave the base in place, for the next k
    _write(folder / "curve.json", {"loss": result.losses})
    _write(
        folder / "data_card.json",
        {
            "k": subset.k,
            "variant": identity["variant"],
            "episodes": subset.episodes,
            "examples": card,
            "window_tokens": sum(c["window_tokens"] for c in card),
            "trained_tokens": sum(c["trained_tokens"] for c in card),
        },
    )
    saved = identity | {
        "steps": result.steps,
        "seconds": result.seconds,
        "loss_first": result.losses[0],
        "loss_last": result.losses[-1],
        "method": "full" if config.full else "lora",
        "lora_targets": None if config.full else "q,k,v,o,gate,up,down projections",
    }
    _write(folder / RUN, saved)
    return saved


def _write(path: Path, value: Any) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2))
