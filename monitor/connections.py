"""Redis connections, and the one adapter that normalises redis-py's reply shapes."""

import os
import socket
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Entry = tuple[bytes, dict[bytes, bytes]]


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client with bounded reconnect backoff (the pool reconnects by itself)."""
    return aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=5,
        health_check_interval=15,
        retry=Retry(EqualJitterBackoff(cap=1.0, base=0.02), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def stream_entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """XREAD/XREADGROUP reply as ``[(stream, [(id, fields), ...])]`` under RESP2 or RESP3."""
    if not reply:
        return []
    items = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, list[Entry]]] = []
    for stream, entries in items:
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], list):
            entries = entries[0]  # RESP3 wraps the entry list once more
        name = stream.decode() if isinstance(stream, bytes) else str(stream)
        out.append((name, [(_b(i), f or {}) for i, f in entries]))
    return out


def autoclaim_entries(reply: Sequence[Any]) -> tuple[bytes, list[Entry], list[bytes]]:
    """XAUTOCLAIM reply as (next cursor, claimed entries, deleted ids)."""
    cursor = _b(reply[0])
    claimed = [(_b(i), f) for i, f in reply[1] if f is not None]
    # ids whose entries were trimmed away come back with no fields (and in reply[2] on 7.0+)
    deleted = [_b(i) for i, f in reply[1] if f is None]
    if len(reply) > 2 and reply[2]:
        deleted += [_b(i) for i in reply[2]]
    return cursor, claimed, deleted


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) reading from the start; idempotent."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def consumer_name(role: str = "") -> str:
    """Stable per process (host:pid), so dead consumers are recognisable."""
    return f"{socket.gethostname()}:{os.getpid()}{':' + role if role else ''}"
