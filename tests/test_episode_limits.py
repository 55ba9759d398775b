"""Live episodes an unauthenticated client can create are bounded (issue 20, item 7):
registrations beyond RUNAWAY_MAX_ACTIVE_EPISODES are 429, finished and abandoned ones
free their place, idle episodes leave the detector's memory and reload from their
checkpoint, and the checkpoints of expired episodes leave Redis."""

import time

from detectors.service import DetectorService
from tests.api_helpers import MO, api_client, mo_step, register


async def test_registrations_beyond_the_limit_are_429(settings, redis):
    async with api_client(
        settings, detector=False, max_active_episodes=5, step_timeout_s=0.05
    ) as client:
        episodes = [await register(client) for _ in range(5)]
        for _ in range(3):
            resp = await client.post("/v1/episodes", json=MO)
            body = await resp.json()
            assert resp.status == 429 and body["error"] == "too_many_episodes", body
            assert "RUNAWAY_MAX_ACTIVE_EPISODES" in body["message"]
        # the same registration again is still idempotent, not refused
        again = {**MO, "episode_id": "fixed"}
        assert (await client.post(f"/v1/episodes/{episodes[0]}/finish")).status == 200
        assert (await client.post("/v1/episodes", json=again)).status == 201
        assert (await client.post("/v1/episodes", json=again)).status == 200
        assert (await client.post("/v1/episodes", json=MO)).status == 429
        # steps of the registered ones go on
        assert (
            await client.post(f"/v1/episodes/{episodes[1]}/steps", json=mo_step(1))
        ).status == 200
        assert await redis.zcard(settings.keys.active_episodes()) == 5


async def test_abandoned_episodes_stop_counting(settings, redis):
    async with api_client(
        settings, detector=False, max_active_episodes=2, episode_abandon_s=0.5
    ) as client:
        await register(client)
        await register(client)
        assert (await client.post("/v1/episodes", json=MO)).status == 429
        key = settings.keys.active_episodes()
        members = await redis.zrange(key, 0, -1, withscores=True)
        await redis.zadd(key, {m: s - 1 for m, s in members})  # both a second older
        assert (await client.post("/v1/episodes", json=MO)).status == 201


async def test_idle_episodes_leave_the_detectors_memory_and_come_back(settings, redis):
    settings = settings.model_copy(update={"episode_idle_s": 0.2})
    async with api_client(settings, detector=False, step_timeout_s=0.05) as client:
        episodes = [await register(client) for _ in range(20)]
        for e in episodes:
            await client.post(f"/v1/episodes/{e}/steps?wait=false", json=mo_step(1))
    service = DetectorService(redis, settings)
    await service.ensure_groups()
    for shard in range(settings.shards):
        assert await service._acquire(shard)
    consumers = [service._consumer(s) for s in range(settings.shards)]
    for c in consumers:
        await c.take_over()
        await c.poll(block_ms=1)  # its own pending entries (none), then new ones
        while await c.poll(block_ms=1):
            pass
    assert sum(len(c.records) for c in consumers) == 20
    deadline = time.monotonic() + 5
    while sum(len(c.records) for c in consumers):
        assert time.monotonic() < deadline, "idle episodes kept in memory"
        for c in consumers:
            await c.poll(block_ms=20)
    # the next step of one reloads its checkpoint and is scored after step 1
    async with api_client(settings, detector=False, step_timeout_s=0.05) as client:
        await client.post(f"/v1/episodes/{episodes[0]}/steps?wait=false", json=mo_step(2))
    shard = settings.keys.shard_of(episodes[0])
    assert await consumers[shard].poll(block_ms=50) == 1
    assert consumers[shard].records[episodes[0]].last_step == 2


async def test_checkpoints_of_expired_episodes_leave_redis(settings, redis):
    settings = settings.model_copy(update={"episode_idle_s": 0.2})
    async with api_client(settings, detector=False) as client:
        episodes = [await register(client) for _ in range(6)]
    service = DetectorService(redis, settings)
    await service.run_until_idle()
    states = [settings.keys.detector_state(s) for s in range(settings.shards)]
    assert sum([await redis.hlen(k) for k in states]) == 12  # spec and state each, never a step
    for e in episodes[:4]:  # as EPISODE_TTL_S does to abandoned ones
        await redis.delete(settings.keys.episode(e))
    deadline = time.monotonic() + 5
    while sum([await redis.hlen(k) for k in states]) != 4:
        assert time.monotonic() < deadline, "abandoned checkpoints stay"
        await DetectorService(redis, settings).run_until_idle()
