"""The mirror model itself: tokens of a conversation and hidden states at chosen tokens.

torch and transformers are imported here, when a :class:`MirrorReader` is made (the
``mirror`` extra), never by the rest of the package. Everything is blocking CPU work:
callers in an event loop run it in a thread.
"""

from dataclasses import dataclass
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


class MirrorReader:
    """One loaded mirror model."""

    def __init__(self, name: str, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = mirror_model(name).gguf()
        self.name = name
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
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
