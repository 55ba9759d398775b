"""A tuned model behind the same OpenAI-compatible route as the base: llama.cpp + LoRA.

The base GGUF stays as it is; the server loads the adapter GGUF on top
(``python -m llama_cpp.server --model BASE.gguf --lora_path adapter.gguf``), so every
command that takes ``--agent openai-compatible --base-url URL`` uses a tuned model like
the base. llama.cpp's own ``llama-server --model BASE.gguf --lora adapter.gguf`` serves
the same file; vLLM takes peft's ``adapter/`` folder directly (``vllm serve BASE
--enable-lora --lora-modules k8=OUT/k008/adapter``, then ``model: k8``). See
docs/finetune.md.
"""

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    """A free TCP port on loopback (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"{url}/v1/models", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"llama_cpp.server not ready within {timeout_s:g} s")


@contextlib.asynccontextmanager
async def llama_server(
    model: Path, lora: Path | None = None, log: Path | None = None, n_ctx: int = 4096
) -> AsyncIterator[str]:
    """``llama_cpp.server`` on a free port (with ``lora`` applied); yields the ``/v1`` URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--verbose",
        "false",
    ]
    if lora is not None:
        args += ["--lora_path", str(lora)]
    sink = await asyncio.to_thread(open, log or "/dev/null", "ab")
    with sink:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc, STARTUP_TIMEOUT_S)
        yield f"{url}/v1"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
