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

__all__ = ["ROOT", "bench_redis", "percentile", "print_table", "rss_bytes", "run"]


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main`` on uvloop when it is installed (as the CLI does), else asyncio."""
    from monitor.runtime import event_loop_policy

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
