"""The peft -> llama.cpp GGUF LoRA conversion, checked by reading the file back."""

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from monitor.finetune.gguf_lora import _permute, gguf_tensor_name, write_gguf_adapter


def _need() -> None:
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("safetensors") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs the train extra: pip install -e '.[test]'")
        pytest.skip("needs the train extra: pip install -e '.[test]'")


def test_names_follow_llama_cpp():
    key = "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
    assert gguf_tensor_name(key) == ("blk.3.attn_q.weight.lora_a", "self_attn.q_proj")
    key = "base_model.model.model.layers.12.mlp.down_proj.lora_B.weight"
    assert gguf_tensor_name(key) == ("blk.12.ffn_down.weight.lora_b", "mlp.down_proj")
    with pytest.raises(ValueError, match=r"no llama\.cpp tensor"):
        gguf_tensor_name("base_model.model.model.layers.0.mlp.act_fn.lora_A.weight")


def test_adapter_round_trip(tmp_path: Path):
    _need()
    import gguf
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    heads, kv_heads, hidden, rank = 4, 2, 16, 2
    kv = hidden // heads * kv_heads
    prefix = "base_model.model.model.layers.0.self_attn"
    tensors = {
        f"{prefix}.q_proj.lora_A.weight": rng.normal(size=(rank, hidden)).astype(np.float32),
        f"{prefix}.q_proj.lora_B.weight": rng.normal(size=(hidden, rank)).astype(np.float32),
        f"{prefix}.k_proj.lora_B.weight": rng.normal(size=(kv, rank)).astype(np.float32),
        f"{prefix}.v_proj.lora_B.weight": rng.normal(size=(kv, rank)).astype(np.float32),
    }
    save_file(tensors, str(tmp_path / "adapter_model.safetensors"))
    (tmp_path / "adapter_config.json").write_bytes(orjson.dumps({"lora_alpha": 16, "r": rank}))
    config = SimpleNamespace(num_attention_heads=heads, num_key_value_heads=kv_heads)
    out = write_gguf_adapter(tmp_path, tmp_path / "adapter.gguf", config)

    reader = gguf.GGUFReader(str(out))
    fields = {name: reader.fields[name] for name in ("general.type", "adapter.lora.alpha")}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 16.0
    got = {t.name: np.array(t.data).reshape(tuple(reversed(t.shape))) for t in reader.tensors}
    q_b = tensors[f"{prefix}.q_proj.lora_B.weight"]
    assert got["blk.0.attn_q.weight.lora_a"].shape == (rank, hidden)
    np.testing.assert_array_equal(got["blk.0.attn_q.weight.lora_b"], _permute(q_b, heads))
    assert not np.array_equal(got["blk.0.attn_q.weight.lora_b"], q_b)  # rows really moved
    k_b = tensors[f"{prefix}.k_proj.lora_B.weight"]
    np.testing.assert_array_equal(got["blk.0.attn_k.weight.lora_b"], _permute(k_b, kv_heads))
    v_b = tensors[f"{prefix}.v_proj.lora_B.weight"]
    np.testing.assert_array_equal(got["blk.0.attn_v.weight.lora_b"], v_b)  # V is not permuted
