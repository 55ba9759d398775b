"""The mirror model itself: tokens of a conversation and hidden states at chosen tokens.

torch and transformers are imported here, when a :class:`MirrorReader` is made (the
``mirror`` extra), never by the rest of the package. Everything is blocking CPU work:
callers in an event loop run it in a thread.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.analysis.mirror.models import mirror_model
from workers.agents.base import Message


@dataclass(slots=True)
class Rendered:
    """A message list in the model's chat template, as token ids, with each message's
    last token (``ends[i]``; -1 where a template folds a message into the next one)."""

    ids: list[int]
    ends: list[int]


def default_cache() -> Path:
    return Path.home() / ".cache" / "runaway-monitor" / "mirror"


def _load(name: str, cache: Path | None) -> tuple[Any, Any]:
    """Tokenizer and model; a GGUF is dequantised once and kept as safetensors.

    Why the cache: reading the GGUF took 74 s on a busy 2-core machine, loading the saved
    float32 weights 1 s, with identical logits. The cache is keyed
    by the GGUF's name and size, so a new package version converts again.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = mirror_model(name).gguf()
    converted = None
    if cache is not None:
        converted = cache / f"{name}-{gguf.stem}-{gguf.stat().st_size}"
        if (converted / "config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(converted)
            return tokenizer, AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    if converted is not None:
        partial = converted.with_name(converted.name + ".partial")
        # the weights are float32 now; without this transformers refuses to save a
        # model that it loaded from a (quantised) GGUF
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        if not converted.exists():  # another process may have finished first
            partial.replace(converted)
    return tokenizer, model


class MirrorReader:
    """One loaded mirror model."""

    def __init__(self, name: str, threads: int | None = None, cache: Path | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.tokenizer, self.model = _load(name, cache if cache is not None else default_cache())
        self.model.eval()
        config = self.model.config
        self.layers = int(config.num_hidden_layers)  # hidden states 0 (embeddings) .. layers
        self.context = int(getattr(config, "max_position_embeddings", 2048) or 2048)

    def _text(self, messages: list[Message]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False))

    def render(self, messages: list[Message]) -> Rendered:
        """Token ids of ``messages`` and where each message ends.

        A message ends where the template of the messages up to it ends: chat templates
        are prefix-stable for the turns after the first (checked, not assumed).
        """
        full = self._text(messages)
        encoded = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        starts = [start for start, _ in encoded["offset_mapping"]]
        ends: list[int] = []
        for i in range(len(messages)):
            prefix = self._text(messages[: i + 1])
            if not full.startswith(prefix):
                if i == 0:  # a template that folds the system prompt into the first turn
                    ends.append(-1)
                    continue
                raise ValueError(f"{self.name}'s chat template is not prefix-stable at message {i}")
            ends.append(int(np.searchsorted(starts, len(prefix), side="left")) - 1)
        return Rendered(list(encoded["input_ids"]), ends)

    def hidden_states(self, ids: list[int], positions: list[int], layers: list[int]) -> np.ndarray:
        """float32 [positions, layers, hidden size]: one forward pass over ``ids``."""
        import torch

        with torch.inference_mode():
            out = self.model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        stacked = torch.stack([out.hidden_states[layer][0] for layer in layers], dim=1)
        return stacked[positions].to(torch.float32).numpy()
