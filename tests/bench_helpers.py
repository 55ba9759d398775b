"""Running a bench script as its README line says (``python bench/x.py --json``)."""

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


async def run_bench(*args: str, timeout_s: float = 90) -> dict[str, Any]:
    """Run ``python *args --json`` from the repository root; its last stdout line, parsed.

    ``REDIS_URL`` is unset, so each run uses its own embedded Redis. On a timeout the
    whole process group is killed and the test fails with the end of its stderr.
    """
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        "--json",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own group: a timeout stops the children it started
    )
    communicating = asyncio.ensure_future(proc.communicate())
    done, _ = await asyncio.wait([communicating], timeout=timeout_s)
    if not done:  # stop the whole group, then say what the bench had printed by then
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = await communicating
        pytest.fail(f"{args[0]} ran past {timeout_s} s; its stderr ends:\n{err.decode()[-3000:]}")
    out, err = communicating.result()
    assert proc.returncode == 0, err.decode()[-2000:]
    return orjson.loads(out.splitlines()[-1])
