"""``finetune_epochs`` as a search dimension: train (or reuse) the trial's adapter, serve it.

Needs the ``train`` extra and llama-cpp-python's server; imported only by a search that
tunes ``finetune_epochs``.
"""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from monitor.analysis.mirror.models import mirror_model
from monitor.experiments.config import ExperimentConfig
from monitor.finetune.data import load_subsets
from monitor.finetune.runs import finetune_all, run_dir
from monitor.finetune.serving import llama_server
from monitor.finetune.train import TrainConfig


def trial_adapter(config: ExperimentConfig, root: Path, epochs: int) -> Path:
    """The GGUF adapter for ``epochs`` (trained once; a finished one is reused)."""
    spec = config.finetune
    if spec is None:
        raise ValueError("search.finetune_epochs needs a 'finetune' section")
    out = Path(spec.out) if spec.out else root / "finetune"
    train = TrainConfig(
        epochs=float(epochs),
        lr=spec.lr,
        rank=spec.rank,
        alpha=2 * spec.rank,
        seed=spec.seed,
        max_tokens=spec.max_tokens,
        layers=spec.layers,
    )
    subsets = load_subsets(Path(spec.dataset), [spec.k])
    folder = out / f"epochs-{epochs}"
    finetune_all(subsets, spec.base, folder, train, progress=False)
    return run_dir(folder, spec.k, "corrective") / "adapter.gguf"


@contextlib.asynccontextmanager
async def served(config: ExperimentConfig, adapter: Path) -> AsyncIterator[ExperimentConfig]:
    """``config`` with every openai-compatible model pointed at the served adapter."""
    spec = config.finetune
    assert spec is not None
    async with llama_server(mirror_model(spec.base).gguf(), adapter) as url:
        models = [
            m.model_copy(update={"base_url": url}) if m.kind == "openai-compatible" else m
            for m in config.models
        ]
        yield config.model_copy(update={"models": models})
