"""One LoRA fine-tune on the CPU (torch, transformers, peft: the ``train`` extra).

Why LoRA by default, not full fine-tuning: the adapter is 1-2% of the weights, trains
about as fast per step on the CPU, is a few MB on disk per k instead of 540 MB, and is
served on top of the unchanged base GGUF by llama.cpp (``--lora``) and vLLM
(``--enable-lora``) alike; ``--full`` trains every weight instead (then serving needs
a merged model). Deterministic for a seed: fixed example order from ``random.Random``,
``torch.manual_seed``, no dropout, one thread count.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.finetune.windows import Window

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    epochs: float = 3.0
    lr: float = 5e-4
    rank: int = 8
    alpha: int = 16
    seed: int = 0
    max_steps: int | None = None
    max_tokens: int = 384
    full: bool = False
    layers: int | None = None  # LoRA on the last N decoder layers only (None: all)
    threads: int | None = None

    def steps_for(self, sequences: int) -> int:
        """Optimiser steps (batch 1): epochs x sequences, capped by ``max_steps``."""
        steps = max(1, math.ceil(self.epochs * sequences))
        return min(steps, self.max_steps) if self.max_steps else steps


@dataclass(slots=True)
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def load_base(base: str, threads: int | None) -> tuple[Any, Any]:
    """Tokenizer and float32 model of a base the mirror package knows (GGUF in a package)."""
    import torch

    from monitor.analysis.mirror.reader import _load, default_cache

    if threads:
        torch.set_num_threads(threads)
    return _load(base, default_cache())


def wrap_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    total = int(model.config.num_hidden_layers)
    # only the top layers adapted: backpropagation stops there, so a step costs less
    top = list(range(total - config.layers, total)) if config.layers else None
    lora = LoraConfig(
        layers_to_transform=top,
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def sequence_loss(model: Any, window: Window) -> Any:
    import torch

    ids = torch.tensor([window.ids])
    labels = torch.tensor([window.labels])
    return model(input_ids=ids, labels=labels, use_cache=False).loss


def train(
    model: Any,
    windows: list[Window],
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """AdamW, batch 1, constant learning rate, over ``windows`` in a seeded order."""
    import torch

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    steps = config.steps_for(len(windows))
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    model.train()
    order: list[int] = []
    result = TrainResult(steps, 0.0)
    started = time.perf_counter()
    for step in range(steps):
        if not order:
            order = list(range(len(windows)))
            rng.shuffle(order)
        loss = sequence_loss(model, windows[order.pop(0)])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        result.losses.append(round(float(loss.detach()), 6))
        if on_step:
            on_step(step + 1, result.losses[-1])
    result.seconds = round(time.perf_counter() - started, 3)
    model.eval()
    return result


def save(model: Any, tokenizer: Any, folder: Path, full: bool) -> None:
    """The adapter (peft's files) or, with ``full``, the whole model, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if full:
        tokenizer.save_pretrained(folder)


def greedy_answer(
    model: Any, tokenizer: Any, messages: list[dict[str, Any]], tokens: int = 8
) -> str:
    """The model's greedy answer to ``messages`` (the sanity check and the tests)."""
    import torch

    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    text = tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False)
    return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()
