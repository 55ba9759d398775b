"""The embedded Redis: private, and always stopped, Ctrl-C included."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitor.embedded_redis import embedded_redis, find_redis_server
from schemas.redis_io import connect


def redis_servers(parent: int | None = None) -> set[int]:
    """Embedded redis-server processes (of one parent process when given)."""
    args = ["pgrep", "-f", "runaway-redis-"] + (["-P", str(parent)] if parent else [])
    out = subprocess.run(args, capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_embedded_server_runs_privately_and_is_stopped():
    assert os.access(find_redis_server(), os.X_OK)
    async with embedded_redis() as server:
        assert server.url.startswith("unix://")
        socket_dir = Path(server.url.removeprefix("unix://")).parent
        client = connect(server.url)
        assert await client.ping()
        await client.aclose()
        pid = server.pid
    assert not socket_dir.exists()
    await asyncio.sleep(0.1)
    assert pid is not None and not alive(pid)


def test_demo_stops_its_redis_on_ctrl_c():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RUNAWAY_REDIS_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--episodes", "300", "--steps", "100000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not redis_servers(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = redis_servers(proc.pid)
    assert started, "the demo started no embedded redis-server"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0  # interrupted runs say so
    assert not any(alive(pid) for pid in started)
