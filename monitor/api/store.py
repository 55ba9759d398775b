"""Episodes of the sidecar in Redis: register, accept a step, finish, read, list.

Accepting a step is a Lua script over two keys with the shard's hash tag (the episode
hash and the shard's steps stream), so the order check and the publication happen
together or not at all: a duplicate, a gap or an unknown episode writes nothing, and a
Redis Cluster runs the script on the one node that holds both keys. Concurrent requests'
steps go together in one call (:class:`AcceptBatcher`). Every call is bounded
by ``redis_op_timeout_s``; a slow or absent Redis is a 503, never a hang.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.api.errors import ApiError, Unavailable
from schemas.batch_writes import Coalescer
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeFinished, EpisodeStarted, StepEvent
from schemas.keys import EPISODE_TTL_S
from schemas.redis_io import give_back, is_cluster, keep_connection
from schemas.settings import Settings
from schemas.wire import encode

T = TypeVar("T")

# KEYS: episode hash, steps stream. ARGV: spec json, maxlen, k, v, d, ttl, field/value...
_REGISTER = """
if redis.call('exists', KEYS[1]) == 1 then
  if redis.call('hget', KEYS[1], 'spec') == ARGV[1] then return {0, ''} end
  return {-1, ''}
end
redis.call('hset', KEYS[1], 'spec', ARGV[1], unpack(ARGV, 7))
redis.call('expire', KEYS[1], ARGV[6])
local id = redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                      'k', ARGV[3], 'v', ARGV[4], 'd', ARGV[5])
return {1, id}
"""

# One call accepts the steps of many requests. KEYS: (episode hash, steps stream) per
# step. ARGV: 7 per step: step, maxlen, k, v, d, now, final status or ''. Returns
# {code, value} per step, flattened.
_ACCEPT = """
local out = {}
for i = 1, #KEYS / 2 do
  local h, s, a = KEYS[2 * i - 1], KEYS[2 * i], (i - 1) * 7
  local code, value = 1, nil
  if redis.call('hexists', h, 'spec') == 0 then
    code, value = -404, 0
  else
    local accepted = tonumber(redis.call('hget', h, 'accepted_step') or '0')
    local step, final = tonumber(ARGV[a + 1]), ARGV[a + 7]
    if redis.call('hget', h, 'status') ~= 'active' then
      code, value = -410, accepted
    elseif final == '' and step <= accepted then
      code, value = -409, accepted
    elseif final == '' and step ~= accepted + 1 then
      code, value = -422, accepted
    else
      value = redis.call('xadd', s, 'MAXLEN', '~', ARGV[a + 2], '*',
                         'k', ARGV[a + 3], 'v', ARGV[a + 4], 'd', ARGV[a + 5])
      if final == '' then
        redis.call('hset', h, 'accepted_step', step, 'updated_at', ARGV[a + 6])
      else
        redis.call('hset', h, 'status', final, 'updated_at', ARGV[a + 6])
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = value
end
return out
"""

MAX_ACCEPT_BATCH = 500

# KEYS: active-episodes zset. ARGV: now, horizon, max, episode id. Returns 1 when the
# episode was already counted, 2 when it is counted now, 0 when there is no room.
_ADMIT = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[2])
if redis.call('zscore', KEYS[1], ARGV[4]) then
  redis.call('zadd', KEYS[1], ARGV[1], ARGV[4])
  return 1
end
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('zadd', KEYS[1], ARGV[1], ARGV[4])
return 2
"""
TOUCH_EVERY_S = 1.0  # activity of accepted steps reaches the active set this often


AcceptItem = tuple[int, list[str], list[Any]]  # shard, keys, args


class AcceptBatcher(Coalescer[AcceptItem]):
    """The step acceptances of concurrent requests, sent together in one script call.

    Why: one call per request went through the shared pool (a lock and a timeout per
    acquire, and a herd of waiters under load) and paid redis-py's per-call overhead for
    a few microseconds of server work. Requests that arrive while a call is in flight
    leave together in the next one, on a connection kept for this; on a Redis Cluster,
    one call per shard (a script's keys must share a slot).
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(MAX_ACCEPT_BATCH)
        self.redis = redis
        self._per_shard = is_cluster(redis)
        self._client = keep_connection(redis)
        self._script = self._client.register_script(_ACCEPT)

    async def accept(self, shard: int, keys: list[str], args: list[Any]) -> tuple[int, Any]:
        return await self._submit((shard, keys, args))  # type: ignore[no-any-return]

    async def _send(self, items: list[AcceptItem]) -> list[Any]:
        if self._per_shard:
            return await self._per_group(items, lambda item: item[0], self._call)
        return await self._call(items)

    async def _call(self, items: list[AcceptItem]) -> list[Any]:
        keys = [k for _, ks, _ in items for k in ks]
        args = [a for _, _, a_ in items for a in a_]
        reply = await self._script(keys=keys, args=args)
        return [(reply[2 * i], reply[2 * i + 1]) for i in range(len(items))]

    async def aclose(self) -> None:
        await super().aclose()
        await give_back(self._client, self.redis)


@dataclass(frozen=True, slots=True)
class Accepted:
    entry_id: str
    ts: float


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EpisodeStore:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self._register = redis.register_script(_REGISTER)
        self._admit = redis.register_script(_ADMIT)
        self._touched: set[str] = set()
        self._touch_task: asyncio.Task[None] | None = None
        self._accepts = AcceptBatcher(redis)
        self._specs: dict[str, EpisodeSpec] = {}  # immutable once registered: safe to cache

    def _keys(self, episode_id: str) -> list[str]:
        """The episode hash and its shard's steps stream: one hash tag, one cluster slot."""
        return [self.keys.episode(episode_id), self.keys.steps(self.keys.shard_of(episode_id))]

    async def bounded(self, aw: Awaitable[T]) -> T:
        """``aw`` within the Redis bound, or :class:`Unavailable` (503)."""
        try:
            async with asyncio.timeout(self.settings.redis_op_timeout_s):
                return await aw
        except (RedisError, OSError, TimeoutError):
            raise Unavailable() from None

    async def register(self, spec: EpisodeSpec, labels: dict[str, str]) -> bool:
        """Store the spec and publish EpisodeStarted; False when it was already registered."""
        episode_id = spec.episode_id
        spec_json = spec.model_dump_json()
        fields = encode(EpisodeStarted(episode_id=episode_id, spec=spec))
        now = time.time()
        meta = {
            "status": "active",
            "source": "api",
            "accepted_step": 0,
            "registered_at": now,
            "updated_at": now,
            **labels,
        }
        flat = [x for kv in meta.items() for x in kv]
        admitted = await self._admission(episode_id, now)
        result = await self.bounded(
            self._register(
                keys=self._keys(episode_id),
                args=[
                    spec_json,
                    self.settings.steps_maxlen,
                    fields["k"],
                    fields["v"],
                    fields["d"],
                    EPISODE_TTL_S,
                    *flat,
                ],
            )
        )
        if int(result[0]) < 0:
            if admitted == 2:  # counted for a registration that did not happen
                await self.bounded(self.redis.zrem(self.keys.active_episodes(), episode_id))
            raise ApiError(
                409,
                "episode_exists",
                "an episode with this id exists with another spec",
                "episode_id",
            )
        created = int(result[0]) == 1
        if created:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.keys.episodes(), {episode_id: now})
            pipe.zremrangebyscore(self.keys.episodes(), "-inf", now - EPISODE_TTL_S)
            await self.bounded(pipe.execute())
        self._specs[episode_id] = spec
        return created

    async def _admission(self, episode_id: str, now: float) -> int:
        """Count the episode among the active ones, or 429 when they are as many as allowed
        (finished ones and those without a step for episode_abandon_s do not count)."""
        s = self.settings
        admitted = int(
            await self.bounded(
                self._admit(
                    keys=[self.keys.active_episodes()],
                    args=[now, now - s.episode_abandon_s, s.max_active_episodes, episode_id],
                )
            )
        )
        if admitted == 0:
            raise ApiError(
                429,
                "too_many_episodes",
                f"{s.max_active_episodes} episodes are active (RUNAWAY_MAX_ACTIVE_EPISODES): "
                "finish one, or wait for an idle one to be abandoned",
                "episode_id",
            )
        return admitted

    def _touch(self, episode_id: str) -> None:
        """Note an accepted step; the active set learns of it within TOUCH_EVERY_S."""
        self._touched.add(episode_id)
        if self._touch_task is None or self._touch_task.done():
            self._touch_task = asyncio.create_task(self._flush_touched())

    async def _flush_touched(self) -> None:
        await asyncio.sleep(TOUCH_EVERY_S)
        touched, self._touched = self._touched, set()
        if touched:  # XX: finished episodes stay out
            scores = dict.fromkeys(touched, time.time())
            with contextlib.suppress(Unavailable):  # the next step touches it again
                await self.bounded(self.redis.zadd(self.keys.active_episodes(), scores, xx=True))

    async def spec(self, episode_id: str) -> EpisodeSpec:
        """The registered spec (404 when the episode is unknown)."""
        spec = self._specs.get(episode_id)
        if spec is None:
            raw = await self.bounded(self.redis.hget(self.keys.episode(episode_id), "spec"))
            if raw is None:
                raise ApiError(404, "unknown_episode", "no such episode", "episode_id")
            spec = EpisodeSpec.model_validate_json(raw)
            if len(self._specs) > 10_000:
                self._specs.clear()
            self._specs[episode_id] = spec
        return spec

    async def accept_step(self, event: StepEvent) -> Accepted:
        """Publish ``event`` if it is exactly the next step of an active episode."""
        accepted = await self._publish(event, event.step, "")
        self._touch(event.episode_id)
        return accepted

    async def finish(self, event: EpisodeFinished) -> Accepted:
        """Mark the episode finished and publish EpisodeFinished (the detectors drop it).

        Its control stream, which no worker deletes for a sidecar episode, expires with
        the summary instead of staying forever.
        """
        accepted = await self._publish(event, 0, "finished")
        control = self.keys.control(event.episode_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.expire(control, EPISODE_TTL_S)
        pipe.zrem(self.keys.active_episodes(), event.episode_id)
        await self.bounded(pipe.execute())
        return accepted

    async def _publish(self, event: Any, step: int, final: str) -> Accepted:
        episode_id = event.episode_id
        fields = encode(event)
        code, value = await self.bounded(
            self._accepts.accept(
                self.keys.shard_of(episode_id),
                self._keys(episode_id),
                [
                    step,
                    self.settings.steps_maxlen,
                    fields["k"],
                    fields["v"],
                    fields["d"],
                    event.ts,
                    final,
                ],
            )
        )
        code = int(code)
        if code == 1:
            return Accepted(_text(value), event.ts)
        accepted = int(value)
        if code == -404:
            raise ApiError(404, "unknown_episode", "no such episode", "episode_id")
        if code == -410:
            raise ApiError(409, "episode_finished", "the episode has finished", "episode_id")
        if code == -409:
            raise ApiError(
                409,
                "duplicate_step",
                f"step {step} was already accepted; next is {accepted + 1}",
                "step",
                last_step=accepted,
                expected_step=accepted + 1,
            )
        raise ApiError(
            409,
            "step_gap",
            f"steps must arrive in order: expected step {accepted + 1}, got {step}",
            "step",
            last_step=accepted,
            expected_step=accepted + 1,
        )

    async def aclose(self) -> None:
        if self._touch_task is not None:
            self._touch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._touch_task
        await self._accepts.aclose()

    async def summary(self, episode_id: str) -> dict[str, str]:
        raw = await self.bounded(self.redis.hgetall(self.keys.episode(episode_id)))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def control_entries(self, episode_id: str, count: int) -> list[Any]:
        return await self.bounded(self.redis.xrevrange(self.keys.control(episode_id), count=count))

    async def page(self, offset: int, count: int) -> list[tuple[str, float]]:
        """Episode ids, newest first, from the listing index."""
        rows = await self.bounded(
            self.redis.zrevrange(self.keys.episodes(), offset, offset + count - 1, withscores=True)
        )
        return [(_text(e), float(s)) for e, s in rows]

    async def summaries(self, episode_ids: list[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for e in episode_ids:
            pipe.hgetall(self.keys.episode(e))
        rows = await self.bounded(pipe.execute())
        return [{_text(k): _text(v) for k, v in r.items()} for r in rows]
