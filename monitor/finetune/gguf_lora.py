"""A peft LoRA adapter as a llama.cpp GGUF adapter, written with the ``gguf`` package.

Why our own writer instead of llama.cpp's ``convert_lora_to_gguf.py``: that script needs a
llama.cpp source checkout and the base model in Hugging Face layout; the ``gguf`` package
is already in the extra. What llama.cpp expects (``llama-adapter.cpp``): metadata
``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``; per adapted
matrix two tensors ``<base tensor>.lora_a`` (rank x in) and ``.lora_b`` (out x rank); it
applies ``scale * alpha / rank * B A``. Hugging Face and llama.cpp disagree on the row
order of the Q and K projections (llama.cpp's converter permutes them for its rotary
layout), so ``lora_b`` of those is permuted the same way: ``P (B A) = (P B) A``.
"""

from pathlib import Path
from typing import Any

import numpy as np

_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` on the output rows."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensor_name(peft_key: str) -> tuple[str, str]:
    """``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`` ->
    (``blk.3.attn_q.weight.lora_a``, ``self_attn.q_proj``)."""
    parts = peft_key.split(".")
    layer = parts[parts.index("layers") + 1]
    module = ".".join(parts[parts.index("layers") + 2 : parts.index("layers") + 4])
    which = "lora_a" if ".lora_A." in peft_key else "lora_b"
    if module not in _NAMES:
        raise ValueError(f"no llama.cpp tensor for adapted module {module!r}")
    return f"blk.{layer}.{_NAMES[module]}.weight.{which}", module


def write_gguf_adapter(adapter_dir: Path, out: Path, model_config: Any) -> Path:
    """Convert ``adapter_dir`` (peft's ``adapter_model.safetensors`` + config) to ``out``."""
    import gguf
    import orjson
    from safetensors.numpy import load_file

    config = orjson.loads((adapter_dir / "adapter_config.json").read_bytes())
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    heads = int(model_config.num_attention_heads)
    kv_heads = int(model_config.num_key_value_heads)
    writer = gguf.GGUFWriter(str(out), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for key in sorted(tensors):
        name, module = gguf_tensor_name(key)
        data = tensors[key].astype(np.float32)
        if name.endswith("lora_b") and module == "self_attn.q_proj":
            data = _permute(data, heads)
        elif name.endswith("lora_b") and module == "self_attn.k_proj":
            data = _permute(data, kv_heads)
        writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
