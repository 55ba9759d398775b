"""Health of a worker or detector process: its heartbeat in Redis and its readiness.

Why: ``/healthz`` answering "ok" says only that the HTTP server runs. Each process now
writes a heartbeat key with a TTL (as arq's health check does), holding what it is doing
(episodes in flight, shards owned, last batch, errors): ``runaway-monitor status`` reads
them, and a process whose key expired is dead or stuck. ``/readyz`` answers 503 while
Redis or the process's consumer group is missing, or while one of its loops has made no
progress for ``loop_stuck_s`` (a hung call, a deadlock), which a live event loop
answering HTTP would otherwise hide.
"""

import asyncio
import os
import socket
import time
from collections.abc import Iterable
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError, ResponseError

from schemas.keys import Keys

Role = Literal["worker", "detector"]
REGISTRY_KEEP_S = 24 * 3600  # a stopped-answering process stays listed as stale this long


class Heartbeat(BaseModel):
    """What a process reports every heartbeat (the value of its heartbeat key)."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    role: Role
    name: str
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    started_at: float
    ts: float = Field(description="when this heartbeat was written (Unix seconds)")
    loop_ts: float | None = Field(default=None, description="oldest loop's last progress")
    last_batch_ts: float | None = Field(default=None, description="last jobs/steps handled")
    episodes: int | None = Field(default=None, description="worker: episodes in flight")
    concurrency: int | None = None
    shards: list[int] = Field(default_factory=list, description="detector: shards owned")
    errors: int = 0
    last_error: str | None = None


class LoopWatch:
    """Progress marks of a process's loops, its error count and its last batch.

    Each loop calls :meth:`tick` when it comes round; :meth:`stuck` names the loops whose
    last tick is older than ``stuck_after_s``. Monotonic time, so clock steps do not
    make a loop look stuck.
    """

    def __init__(self, stuck_after_s: float, clock: Any = time.monotonic) -> None:
        self.stuck_after_s = stuck_after_s
        self.clock = clock
        self.started_at = time.time()
        self._marks: dict[str, float] = {}
        self.errors = 0
        self.last_error: str | None = None
        self.last_batch_ts: float | None = None

    def tick(self, loop: str = "main") -> None:
        self._marks[loop] = self.clock()

    def forget(self, loop: str) -> None:
        self._marks.pop(loop, None)

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    def batch(self) -> None:
        self.last_batch_ts = time.time()

    @property
    def started(self) -> bool:
        return "main" in self._marks

    def stuck(self) -> list[str]:
        now = self.clock()
        return [n for n, t in self._marks.items() if now - t > self.stuck_after_s]

    def oldest_tick_ts(self) -> float | None:
        """The oldest loop's last progress, as Unix seconds."""
        if not self._marks:
            return None
        return time.time() - (self.clock() - min(self._marks.values()))

    def heartbeat(self, role: Role, name: str, **doing: Any) -> Heartbeat:
        return Heartbeat(
            role=role,
            name=name,
            started_at=self.started_at,
            ts=time.time(),
            loop_ts=self.oldest_tick_ts(),
            last_batch_ts=self.last_batch_ts,
            errors=self.errors,
            last_error=self.last_error,
            **doing,
        )


async def write_heartbeat(redis: aioredis.Redis, keys: Keys, beat: Heartbeat, ttl_s: float) -> None:
    """SET the heartbeat key with its TTL and list the process in its role's registry."""
    registry = keys.heartbeats(beat.role)
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.heartbeat(beat.role, beat.name), beat.model_dump_json(), px=int(ttl_s * 1000))
    pipe.zadd(registry, {beat.name: beat.ts})
    pipe.zremrangebyscore(registry, "-inf", beat.ts - REGISTRY_KEEP_S)
    await pipe.execute()


async def clear_heartbeat(redis: aioredis.Redis, keys: Keys, role: Role, name: str) -> None:
    """A graceful stop: the process is gone, not stale."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(keys.heartbeat(role, name))
    pipe.zrem(keys.heartbeats(role), name)
    await pipe.execute()


async def read_heartbeats(
    redis: aioredis.Redis, keys: Keys, role: Role
) -> list[tuple[str, float, Heartbeat | None]]:
    """Every process of ``role`` seen lately: (name, last seen, heartbeat or None once
    its key has expired: the process is stale)."""
    seen = await redis.zrange(keys.heartbeats(role), 0, -1, withscores=True)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n, _ in seen]
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.heartbeat(role, name))
    values = await pipe.execute() if names else []
    out = []
    for name, (_, last), raw in zip(names, seen, values, strict=True):
        beat = None
        if raw is not None:
            try:
                beat = Heartbeat.model_validate_json(raw)
            except ValueError:
                beat = None  # another version's, or garbage: treated as not live
        out.append((name, float(last), beat))
    return out


def field_of(info: dict[Any, Any], name: str) -> Any:
    """A field of an XINFO reply, whichever of str or bytes keys the client gave."""
    value = info.get(name, info.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else value


async def group_problems(redis: aioredis.Redis, streams: Iterable[str], group: str) -> list[str]:
    """What is wrong with ``group`` on ``streams`` (a missing stream or group); [] if fine."""
    streams = list(streams)
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    problems = []
    for stream, reply in zip(streams, await pipe.execute(raise_on_error=False), strict=True):
        if isinstance(reply, ResponseError):
            problems.append(f"{stream}: no stream")
        elif isinstance(reply, Exception):
            raise reply
        elif not any(field_of(g, "name") == group for g in reply):
            problems.append(f"{stream}: no '{group}' consumer group")
    return problems


async def readiness(
    redis: aioredis.Redis,
    watch: LoopWatch,
    streams: Iterable[str],
    group: str,
    timeout_s: float,
    **doing: Any,
) -> dict[str, Any]:
    """The ``/readyz`` body: ``status`` is ``ready`` only when Redis answers within
    ``timeout_s``, ``group`` exists on every stream and no loop is stuck."""
    reasons: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
            reasons += await group_problems(redis, streams, group)
    except (RedisError, OSError, TimeoutError) as exc:
        reasons.append(f"redis unavailable ({type(exc).__name__})")
    if not watch.started:
        reasons.append("the main loop has not started")
    reasons += [f"loop '{n}' made no progress for {watch.stuck_after_s:g} s" for n in watch.stuck()]
    return {
        "status": "not_ready" if reasons else "ready",
        "reasons": reasons,
        "errors": watch.errors,
        **doing,
    }
