"""Pipelined XADD: events published by many episodes at once go out in one round trip.

``publish`` returns once the entry is in Redis. While one pipeline is in flight, new
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

from schemas.wire import encode

log = logging.getLogger(__name__)


class StreamPublisher:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000, retry_s: float = 60.0) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self.retry_s = retry_s
        self._queue: list[tuple[str, dict[str, bytes], int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, stream: str, event: Any, maxlen: int) -> None:
        await self.publish_raw(stream, encode(event), maxlen)

    async def publish_raw(self, stream: str, fields: dict[str, bytes], maxlen: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((stream, fields, maxlen, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await self._send(batch)
            except Exception as exc:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for *_, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _send(self, batch: list[Any]) -> None:
        deadline, backoff = time.monotonic() + self.retry_s, 0.05
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for stream, fields, maxlen, _ in batch:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            try:
                await pipe.execute()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() + backoff > deadline:
                    raise
                log.warning("publisher: redis unavailable (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def aclose(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
