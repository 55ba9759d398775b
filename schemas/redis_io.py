"""Redis connections, and the one adapter that normalises redis-py's reply shapes."""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Entry = tuple[bytes, dict[bytes, bytes]]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client with bounded reconnect backoff (the pool reconnects by itself).

    The pool blocks (up to 20 s) for a free connection instead of failing: hundreds of
    episodes that end at once each ack their job, and must queue, not error.

    ``redis+cluster://host:port`` (or ``rediss+cluster://``) gives a Redis Cluster client
    seeded from that node. Every key of one shard shares the hash tag ``{s<n>}``, so each
    MULTI/EXEC and each multi-stream XREAD stays within one slot; other pipelines are
    split per node by the client.
    """
    if is_cluster_url(url):
        return connect_cluster(url, max_connections=max_connections)  # type: ignore[return-value]
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_connect_timeout=5,
        health_check_interval=15,
        retry=Retry(EqualJitterBackoff(cap=1.0, base=0.02), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def keep_connection(redis: Any) -> Any:
    """A client that keeps one connection of ``redis``'s pool, for code that calls Redis
    all the time (a stream reader, a batching flusher); give it back with
    :func:`give_back`.

    Why: a call through the pool acquires and releases a connection under a lock and a
    timeout, a good part of a short call's cost. On a Redis Cluster the client routes
    every call to its node itself, so it is used as it is.
    """
    return redis if is_cluster(redis) else redis.client()


async def give_back(client: Any, redis: Any) -> None:
    """Release what :func:`keep_connection` kept; shielded: a second cancellation must not
    leave the connection held."""
    if client is not redis:
        await asyncio.shield(client.aclose())


@contextlib.asynccontextmanager
async def dedicated(redis: Any) -> AsyncIterator[Any]:
    """:func:`keep_connection` for the duration of a block."""
    client = keep_connection(redis)
    try:
        yield client
    finally:
        await give_back(client, redis)


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def read_groups(redis: Any, shards: int) -> list[list[int]]:
    """Shards whose streams one XREAD may read together.

    On one server, all of them: one call per wake instead of one per shard (each call
    costs far more in redis-py than the entries it returns). On a Redis Cluster each
    shard is its own hash slot, and a multi-key read must stay in one slot.
    """
    if is_cluster(redis):
        return [[s] for s in range(shards)]
    return [list(range(shards))]


async def server_now_id(redis: Any) -> str:
    """A stream id at the server's clock: a reader that starts there sees only what comes
    after (the time of this host may differ from the server's)."""
    seconds, micros = await redis.time()
    return f"{int(seconds) * 1000 + int(micros) // 1000}-0"


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def stream_entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """XREAD/XREADGROUP reply as ``[(stream, [(id, fields), ...])]`` under RESP2 or RESP3,
    parsed by redis-py or raw."""
    if not reply:
        return []
    items = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, list[Entry]]] = []
    for stream, entries in items:
        if (
            isinstance(entries, list)
            and len(entries) == 1
            and isinstance(entries[0], list)
            and not (entries[0] and isinstance(entries[0][0], bytes | str))
        ):
            entries = entries[0]  # RESP3 wraps the entry list once more (a raw entry: id first)
        name = stream.decode() if isinstance(stream, bytes) else str(stream)
        out.append((name, [(_b(i), _fields(f)) for i, f in entries]))
    return out


def _fields(fields: Any) -> dict[bytes, bytes]:
    """An entry's fields: redis-py's dict, a raw ``[f1, v1, ...]`` reply, or none (the
    entry was trimmed away while pending)."""
    if not fields:
        return {}
    if isinstance(fields, list):
        return dict(zip(fields[::2], fields[1::2], strict=True))
    return fields


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


def connect_cluster(url: str, *, max_connections: int = 64) -> RedisCluster:
    """A Redis Cluster client from a ``redis+cluster://`` URL (see :func:`connect`)."""
    plain = url.replace("+cluster://", "://", 1)
    return RedisCluster.from_url(
        plain,
        max_connections=max_connections,
        socket_connect_timeout=5,
        retry=Retry(EqualJitterBackoff(cap=1.0, base=0.02), retries=3),
    )
