"""Pipelined XADD: events published by many episodes at once go out in one round trip.

``publish`` returns once the entry is in Redis. While one pipeline is in flight, new
events queue up and leave together in the next, so the batch size follows the load.
"""

import asyncio
from typing import Any

import redis.asyncio as aioredis

from schemas.wire import encode


class StreamPublisher:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000) -> None:
        self.redis = redis
        self.max_batch = max_batch
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
            pipe = self.redis.pipeline(transaction=False)
            for stream, fields, maxlen, _ in batch:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            try:
                await pipe.execute()
            except Exception as exc:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for *_, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def aclose(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
