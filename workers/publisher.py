"""Batched XADD: events published by many episodes at once go out in one call.

``publish`` returns once the entry is in Redis. While one batch is in flight, new
events queue up and leave together in the next, so the batch size follows the load.
When Redis is unreachable (restart, failover) the batch is retried with exponential
backoff for up to ``retry_s`` before the publishers see the error; meanwhile the
episodes wait, which is the backpressure. A batch that reached Redis but whose reply was
lost may be written twice: the detectors ignore a step at or below the last one seen.
"""

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.backoff import Backoff
from schemas.batch_writes import BatchWriter, Coalescer, WriteBatch
from schemas.redis_io import give_back, is_cluster, keep_connection
from schemas.wire import encode

log = logging.getLogger(__name__)


Item = tuple[str, dict[str, bytes], int]  # stream, fields, maxlen


class StreamPublisher(Coalescer[Item]):
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000, retry_s: float = 60.0) -> None:
        super().__init__(max_batch)
        self.redis = redis
        self.retry_s = retry_s
        # one connection kept for the flusher; on a Redis Cluster, one call per stream
        self._by_stream = is_cluster(redis)
        self._client = keep_connection(redis)
        self._writer = BatchWriter(self._client)

    async def publish(self, stream: str, event: Any, maxlen: int) -> None:
        await self.publish_raw(stream, encode(event), maxlen)

    async def publish_raw(self, stream: str, fields: dict[str, bytes], maxlen: int) -> None:
        await self._submit((stream, fields, maxlen))

    async def _send(self, items: list[Item]) -> list[Any]:
        if self._by_stream:  # a script's keys must share a hash slot
            return await self._per_group(items, lambda item: item[0], self._write)
        return await self._write(items)

    async def _write(self, items: list[Item]) -> list[Any]:
        """XADD ``items`` in one call, retrying while Redis is unreachable."""
        writes = WriteBatch()
        for stream, fields, maxlen in items:
            writes.xadd(stream, fields, maxlen)
        deadline, backoff = time.monotonic() + self.retry_s, Backoff()
        while True:
            try:
                await self._writer.send(writes)
                return [None] * len(items)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("publisher: redis unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await super().aclose()
        await give_back(self._client, self.redis)
