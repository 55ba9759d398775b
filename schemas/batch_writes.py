"""Many stream and hash writes of one shard as a single Redis call (a Lua script).

Why not a pipeline: redis-py parses every reply of a pipeline (or MULTI/EXEC) on its
own, each with its own timeout context and callback, and that per-command overhead was
the largest share of a step's CPU in the detector and the worker. The script does the
same writes on the server, atomically like MULTI/EXEC, and answers once. On a Redis
Cluster all keys of one call must share a hash slot: a shard's keys share the ``{s<n>}``
tag, and callers send one call per shard there (on a single server one call may span
shards).

The operations travel as one msgpack-encoded argument that the script unpacks with
Redis's built-in ``cmsgpack``: packing thousands of small arguments one by one (hiredis'
``pack_command``, 250-800 ns each) cost the detector ~14 us per step, msgpack ~7.

A batch is built with :class:`WriteBatch` and sent with :meth:`BatchWriter.send`.
:class:`Coalescer` sends what many tasks ask for while a call is in flight in the next
call (the publisher, :class:`CommandBatcher` and the sidecar's accepts use it).
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import msgpack
import redis.asyncio as aioredis

T = TypeVar("T")

_MAX_EXACT_INT = 2**53  # a Lua number holds integers exactly up to here

# ARGV[1] is a msgpack array, a flat list of operations; each names its key by its
# position in KEYS:
#   X key maxlen n f1 v1 ... fn vn   XADD key MAXLEN ~ maxlen * f1 v1 ...
#   H key n f1 v1 ...                HSET key f1 v1 ...
#   D key n f1 ...                   HDEL key f1 ...
#   E key seconds                    EXPIRE key seconds
#   A key group n id1 ...            XACK key group id1 ...
#   I key n f1 by1 ...               HINCRBY key f1 by1 (per field)
_SCRIPT = """
local ARGV = cmsgpack.unpack(ARGV[1])
local i, n = 1, #ARGV
while i <= n do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'X' then
    local count = tonumber(ARGV[i + 3])
    local args = {'XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*'}
    for j = i + 4, i + 3 + 2 * count do args[#args + 1] = ARGV[j] end
    redis.call(unpack(args))
    i = i + 4 + 2 * count
  elseif op == 'H' or op == 'D' then
    local count = tonumber(ARGV[i + 2]) * (op == 'H' and 2 or 1)
    local args = {op == 'H' and 'HSET' or 'HDEL', key}
    for j = i + 3, i + 2 + count do args[#args + 1] = ARGV[j] end
    redis.call(unpack(args))
    i = i + 3 + count
  elseif op == 'E' then
    redis.call('EXPIRE', key, ARGV[i + 2])
    i = i + 3
  elseif op == 'A' then
    local count = tonumber(ARGV[i + 3])
    local args = {'XACK', key, ARGV[i + 2]}
    for j = i + 4, i + 3 + count do args[#args + 1] = ARGV[j] end
    redis.call(unpack(args))
    i = i + 4 + count
  elseif op == 'I' then
    local count = tonumber(ARGV[i + 2])
    for j = i + 3, i + 1 + 2 * count, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end
    i = i + 3 + 2 * count
  else
    return redis.error_reply('batch_writes: unknown op ' .. tostring(op))
  end
end
return n
"""

# Lua's unpack() takes at most ~8,000 values; an operation longer than this is split
MAX_VALUES_PER_OP = 4_000


class WriteBatch:
    """Writes gathered for one call; every key must be in the same hash slot."""

    __slots__ = ("_index", "args", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[Any] = []
        self._index: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.args)

    def _key(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index

    def xadd(self, stream: str, fields: Mapping[Any, Any], maxlen: int) -> None:
        args = self.args
        args += ("X", self._key(stream), maxlen, len(fields))
        for name, value in fields.items():
            args += (name, value if type(value) is bytes else _value(value))

    def hset(self, key: str, mapping: Mapping[Any, Any]) -> None:
        items = list(mapping.items())
        step = MAX_VALUES_PER_OP // 2
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            self.args += ("H", self._key(key), len(chunk))
            for name, value in chunk:
                self.args += (name, value if type(value) is bytes else _value(value))

    def hdel(self, key: str, fields: Iterable[Any]) -> None:
        names = list(fields)
        for start in range(0, len(names), MAX_VALUES_PER_OP):
            chunk = names[start : start + MAX_VALUES_PER_OP]
            self.args += ("D", self._key(key), len(chunk), *chunk)

    def expire(self, key: str, seconds: int) -> None:
        self.args += ("E", self._key(key), seconds)

    def hincrby(self, key: str, counts: Mapping[str, int]) -> None:
        """HINCRBY of each field by its count (running totals)."""
        items = list(counts.items())
        step = MAX_VALUES_PER_OP // 2
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            self.args += ("I", self._key(key), len(chunk))
            for name, by in chunk:
                self.args += (name, int(by))

    def xack(self, stream: str, group: str, ids: Iterable[Any]) -> None:
        todo = list(ids)
        for start in range(0, len(todo), MAX_VALUES_PER_OP):
            chunk = todo[start : start + MAX_VALUES_PER_OP]
            self.args += ("A", self._key(stream), group, len(chunk), *chunk)


def _value(value: Any) -> Any:
    """A field value as Redis would store it from redis-py: a Lua number would turn a
    float into an integer, so floats (and integers past 2**53) go as their text."""
    if isinstance(value, bool) or value is None:  # redis-py refuses them too
        raise TypeError(f"a Redis value cannot be {value!r}")
    if isinstance(value, float) or (isinstance(value, int) and abs(value) >= _MAX_EXACT_INT):
        return repr(value)
    return value


class BatchWriter:
    """Sends :class:`WriteBatch` es through one registered script (EVALSHA)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(_SCRIPT)
        # str and bytes both as msgpack "raw": Redis's cmsgpack predates the bin types
        self._pack = msgpack.Packer(use_bin_type=False).pack

    async def send(self, batch: WriteBatch) -> None:
        if batch:
            await self._script(keys=batch.keys, args=[self._pack(batch.args)])


class Coalescer(Generic[T]):
    """Calls of many tasks that arrive while one call is in flight go out together next.

    The batch size follows the load: one item when idle, hundreds under load, with no
    timer and no added latency. A subclass sends a batch in :meth:`_send` and returns one
    outcome per item, in order: a result, or an exception for that item alone; if
    ``_send`` raises, every item of the batch gets the exception.
    """

    def __init__(self, max_batch: int = 1000) -> None:
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _submit(self, item: T) -> asyncio.Future[Any]:
        """Queue ``item``; the future resolves with its outcome once its batch is sent."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return fut

    async def _send(self, items: list[T]) -> list[Any]:
        raise NotImplementedError

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                outcomes = await self._send([item for item, _ in batch])
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if fut.done():  # its caller gave up waiting (timeout, cancellation)
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    @staticmethod
    async def _per_group(
        items: list[T], key: Callable[[T], Any], send: Callable[[list[T]], Awaitable[list[Any]]]
    ) -> list[Any]:
        """One ``send`` per group of items (a hash slot of a Redis Cluster: a script's or
        a transaction's keys must share one), concurrently; outcomes in item order."""
        groups: dict[Any, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(key(item), []).append(i)
        replies = await asyncio.gather(
            *(send([items[i] for i in where]) for where in groups.values()),
            return_exceptions=True,
        )
        outcomes: list[Any] = [None] * len(items)
        for where, reply in zip(groups.values(), replies, strict=True):
            for j, i in enumerate(where):
                outcomes[i] = reply if isinstance(reply, BaseException) else reply[j]
        return outcomes

    async def aclose(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


class CommandBatcher(Coalescer[Callable[[Any], None]]):
    """Small writes of many tasks at once (job acks, episode index entries), sent together.

    Why: a thousand episodes ending within a second each sent their own pipeline through
    the shared pool, queueing on it and paying a round trip each; the latency of every
    other step went up meanwhile. ``submit`` queues a function that adds commands to a
    pipeline; all that queued while one pipeline was in flight go in the next. A failed
    pipeline fails every submitter (each has its own retry).
    """

    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000) -> None:
        super().__init__(max_batch)
        self.redis = redis

    async def submit(self, fill: Callable[[Any], None]) -> None:
        await self._submit(fill)

    async def _send(self, items: list[Callable[[Any], None]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for fill in items:
            fill(pipe)
        await pipe.execute()
        return [None] * len(items)
