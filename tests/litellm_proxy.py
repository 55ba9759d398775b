"""A real LiteLLM proxy on loopback for tests, in its own cached virtual environment.

``scripts/prepare-litellm.sh`` makes the environment once (its ``proxy`` extra pins
rich<14, which the project's own environment cannot have) under the shared cache dir
outside the clone; the ``litellm_python`` session fixture calls it, so the suite and
``.ci/run`` need nothing installed by hand. :func:`litellm_proxy` writes the config
(``guardrails:`` at the top level, the monitor as a ``generic_guardrail_api``
``pre_call`` guardrail, ``default_on``) and waits for the proxy to answer.
"""

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def litellm_python() -> str:
    """The python of the proxy's environment (created on first use, then cached)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "prepare-litellm.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, f"prepare-litellm.sh failed:\n{out.stderr[-3000:]}"
    return out.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proxy_config(model_base_url: str, monitor_url: str, fallback: str = "fail_closed") -> dict:
    return {
        "model_list": [
            {
                "model_name": "local",
                "litellm_params": {
                    "model": "openai/local",
                    "api_base": model_base_url,
                    "api_key": "unused",
                    "max_retries": 0,
                },
            }
        ],
        "guardrails": [
            {
                "guardrail_name": "runaway-monitor",
                "litellm_params": {
                    "guardrail": "generic_guardrail_api",
                    "mode": "pre_call",
                    "api_base": monitor_url,
                    "default_on": True,
                    "unreachable_fallback": fallback,
                },
            }
        ],
    }


@contextlib.asynccontextmanager
async def litellm_proxy(python: str, config: dict, workdir: Path) -> AsyncIterator[str]:
    """The proxy's base URL while it runs (stopped and awaited after)."""
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (workdir / "litellm.log").open("wb")
    port = _free_port()
    env = {
        **os.environ,
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "LITELLM_LOG": "ERROR",
        "NO_DOCS": "True",
        "PYTHONPATH": "",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    litellm = str(Path(python).parent / "litellm")
    proc = await asyncio.create_subprocess_exec(
        litellm,
        "--config",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(proc, url, workdir / "litellm.log")
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def _wait_ready(proc: asyncio.subprocess.Process, url: str, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            if proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/health/liveliness") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]
    raise AssertionError(f"the LiteLLM proxy did not become ready (rc={proc.returncode}):\n{tail}")
