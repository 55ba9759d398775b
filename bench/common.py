"""Shared bits of the benchmarks: the repo on sys.path, a Redis, uvloop, output."""

import asyncio
import contextlib
import json
import os
import resource
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.embedded_redis import embedded_redis  # noqa: E402
from monitor.summary import percentile  # noqa: E402

__all__ = [
    "ROOT",
    "bench_redis",
    "cpu_seconds",
    "percentile",
    "print_table",
    "rss_bytes",
    "run",
    "start_detectors",
]


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main`` as the CLI runs its commands: uvloop when installed, tuned GC."""
    from monitor.runtime import event_loop_policy, tune_gc

    tune_gc()
    with contextlib.suppress(Exception):
        asyncio.set_event_loop_policy(event_loop_policy())
    return asyncio.run(main())


@contextlib.asynccontextmanager
async def bench_redis() -> AsyncIterator[tuple[str, str]]:
    """(url, key prefix): ``REDIS_URL`` when set, else a private embedded server."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, prefix
        return
    async with embedded_redis() as server:
        yield server.url, prefix


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size now (Linux /proc), of this process or ``pid``."""
    path = f"/proc/{pid or 'self'}/statm"
    try:
        with open(path) as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


async def start_detectors(
    url: str, settings: Any, n: int = 1, timeout_s: float = 30.0, **env: str
) -> list[asyncio.subprocess.Process]:
    """``n`` ``runaway-monitor detector`` processes (as deployed), returned once they hold
    every shard between them (a Python start takes ~1 s, which a bench must not time)."""
    environ = {
        **os.environ,
        "REDIS_URL": url,
        "RUNAWAY_KEY_PREFIX": settings.key_prefix,
        "RUNAWAY_SHARDS": str(settings.shards),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "detector",
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    from schemas.redis_io import connect

    redis = connect(url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and all(p.returncode is None for p in procs):
            owners = [await redis.get(settings.keys.lease(s)) for s in range(settings.shards)]
            if all(owners) and len(set(owners)) == min(n, settings.shards):
                return procs
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    for p in procs:
        if p.returncode is None:
            p.terminate()
    raise RuntimeError("the detector processes did not take their shards")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of this process or ``pid`` so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def print_table(title: str, rows: Sequence[tuple[str, Any]], as_json: dict | None = None) -> None:
    if as_json is not None:
        print(json.dumps(as_json))
        return
    print(title)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        if isinstance(value, float):
            value = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        print(f"  {key:<{width}}  {value}")
