"""The detector process: shard leases, one consumer task per owned shard, heartbeats.

Shards are spread over the live detectors (each takes about ``shards / live``) with
leases (``SET NX PX``) renewed every heartbeat. A detector that dies stops renewing; after
``claim_idle_ms`` its shards are free, and the next owner claims their pending entries
(XAUTOCLAIM) and scores them before new ones, so no step is lost or scored out of order.
Each round also writes the detector's heartbeat key (:mod:`schemas.health`: shards
owned, last batch, errors) for ``runaway-monitor status``; :meth:`DetectorService.readiness`
is its ``/readyz``.
"""

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from detectors.consumer import ShardConsumer
from schemas.backoff import Backoff
from schemas.health import LoopWatch, clear_heartbeat, readiness, write_heartbeat
from schemas.keys import DETECTOR_GROUP
from schemas.metrics import DetectorMetrics
from schemas.redis_io import consumer_name, dedicated, ensure_group
from schemas.settings import Settings

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class DetectorService:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        metrics: DetectorMetrics | None = None,
        name: str | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self.metrics = metrics or DetectorMetrics()
        self.name = name or consumer_name()
        self.consumers: dict[int, ShardConsumer] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.ready = False  # the last balancing round reached Redis (part of /readyz)
        self.health = LoopWatch(settings.loop_stuck_s)

    @property
    def lease_ms(self) -> int:
        return self.settings.claim_idle_ms

    async def ensure_groups(self) -> None:
        for stream in self.keys.all_steps():
            await ensure_group(self.redis, stream, DETECTOR_GROUP)

    async def run(self, stop: asyncio.Event) -> None:
        """Score until ``stop`` is set; then finish the batch in hand and hand shards back."""
        self.metrics.up.set(1)
        try:
            while not stop.is_set():
                self.health.tick()
                try:
                    await self.ensure_groups()
                    await self._balance(stop)
                    self.ready = True
                    await self._beat()
                except RedisError as exc:
                    self.ready = False
                    self.health.error(exc)
                    log.warning("detector: redis unavailable (%s); retrying", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.heartbeat_s):
                        await stop.wait()
        finally:
            self.ready = False
            self.metrics.up.set(0)
            await self._release_all()
            with contextlib.suppress(RedisError):  # stopped, not stale
                await clear_heartbeat(self.redis, self.keys, "detector", self.name)

    async def _beat(self) -> None:
        """The heartbeat key ``status`` reads: alive, and the shards this detector owns."""
        beat = self.health.heartbeat("detector", self.name, shards=sorted(self._tasks))
        await write_heartbeat(self.redis, self.keys, beat, self.settings.heartbeat_ttl_s)

    async def readiness(self) -> dict[str, Any]:
        """``/readyz``: Redis answers, every steps stream has the group, no loop is stuck."""
        body = await readiness(
            self.redis,
            self.health,
            self.keys.all_steps(),
            DETECTOR_GROUP,
            self.settings.redis_op_timeout_s,
            shards=sorted(self._tasks),
        )
        if not self.ready and body["status"] == "ready":
            body["status"], body["reasons"] = "not_ready", ["the last balancing round failed"]
        return body

    async def run_until_idle(self) -> int:
        """Burst mode for tests and replay: own every shard, score all that is there, return."""
        await self.ensure_groups()
        handled = 0
        for shard in range(self.keys.shards):
            if await self._acquire(shard):
                consumer = self.consumers[shard] = self._consumer(shard)
                await consumer.take_over()
        try:
            idle_rounds = 0
            while idle_rounds < 2:
                n = 0
                for consumer in self.consumers.values():
                    n += await consumer.poll(block_ms=1)
                handled += n
                idle_rounds = idle_rounds + 1 if n == 0 else 0
        finally:
            await self._release_all()
        return handled

    def _consumer(self, shard: int) -> ShardConsumer:
        return ShardConsumer(self.redis, self.settings, shard, self.name, self.metrics)

    async def _heartbeat(self) -> int:
        """Record this detector as alive; the number of live detectors."""
        now = time.time()
        key = self.keys.detectors()
        horizon = now - 3 * self.settings.heartbeat_s - self.lease_ms / 1000
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(key, {self.name: now})
        pipe.zremrangebyscore(key, "-inf", horizon)
        pipe.zcard(key)
        return max(1, (await pipe.execute())[2])

    async def _balance(self, stop: asyncio.Event) -> None:
        live = await self._heartbeat()
        wanted = math.ceil(self.keys.shards / live)
        for shard in list(self._tasks):
            lost = not await self._renew(
                keys=[self.keys.lease(shard)], args=[self.name, self.lease_ms]
            )
            if lost or self._tasks[shard].done():
                await self._stop_shard(shard, release=not lost)
        for shard in sorted(self._tasks, reverse=True)[: max(0, len(self._tasks) - wanted)]:
            await self._stop_shard(shard, release=True)
        offset = hash(self.name) % self.keys.shards
        for i in range(self.keys.shards):
            shard = (offset + i) % self.keys.shards
            if len(self._tasks) >= wanted or stop.is_set():
                break
            if shard not in self._tasks and await self._acquire(shard):
                self._tasks[shard] = asyncio.create_task(self._run_shard(shard, stop))
        self.metrics.shards.set(len(self._tasks))

    async def _acquire(self, shard: int) -> bool:
        return bool(
            await self.redis.set(self.keys.lease(shard), self.name, nx=True, px=self.lease_ms)
        )

    async def _run_shard(self, shard: int, stop: asyncio.Event) -> None:
        async with dedicated(self.redis) as redis:
            await self._consume(shard, redis, stop)

    async def _consume(self, shard: int, redis: aioredis.Redis, stop: asyncio.Event) -> None:
        consumer = self.consumers[shard] = ShardConsumer(
            redis, self.settings, shard, self.name, self.metrics
        )
        backoff, taken_over, loop = Backoff(), False, f"shard {shard}"
        try:
            while not stop.is_set() and shard in self._tasks:
                self.health.tick(loop)
                try:
                    if not taken_over:
                        await consumer.take_over()
                        taken_over = True
                    if await consumer.poll():
                        self.health.batch()
                    backoff.reset()
                except RedisError as exc:
                    self.health.error(exc)
                    log.warning("detector shard %d: %s; retrying", shard, exc)
                    await backoff.wait(stop)
        finally:
            self.health.forget(loop)

    async def _stop_shard(self, shard: int, *, release: bool) -> None:
        task = self._tasks.pop(shard, None)
        self.consumers.pop(shard, None)
        if task is not None:
            # the loop sees the shard gone and ends after its batch; a blocked read is cut
            try:
                await asyncio.wait_for(asyncio.shield(task), self.settings.block_ms / 1000 + 5)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if release:
            with contextlib.suppress(RedisError):
                await self._release(keys=[self.keys.lease(shard)], args=[self.name])

    async def _release_all(self) -> None:
        shards = set(self._tasks) | set(self.consumers)
        for shard in shards:
            await self._stop_shard(shard, release=True)
        with contextlib.suppress(RedisError):
            await self.redis.zrem(self.keys.detectors(), self.name)
