"""A detector process killed with SIGKILL under load: the survivor reclaims its shard.

Two ``runaway-monitor detector`` processes share the shards; one is SIGKILLed mid-run
(no graceful release: its lease and pending entries are left behind). The survivor must
take the shard over once the lease lapses and claim the pending entries: every step gets
exactly one verdict, scores and flips equal a clean offline scoring, and the dead
consumer's pending entries are reclaimed within twice the claim idle time.
"""

import asyncio
import socket

from schemas.keys import DETECTOR_GROUP
from schemas.wire import decode
from tests.conftest import RECORDINGS
from tests.detector_helpers import control_events, offline, publish_recordings
from tests.pipeline_helpers import process_env, start_process
from tests.waiting import stays, wait_for


async def verdict_steps(redis, settings, episodes) -> dict[str, list[int]]:
    out = {}
    for episode_id in episodes:
        out[episode_id] = [
            e.step for e in await control_events(redis, settings, episode_id) if e.kind == "verdict"
        ]
    return out


async def test_detector_killed_with_sigkill_under_load(redis, settings):
    settings = settings.model_copy(
        update={"claim_idle_ms": 1000, "heartbeat_s": 0.05, "control_maxlen": 1000}
    )
    episodes = await publish_recordings(redis, settings, RECORDINGS)
    total = sum(len(ev) for _, ev in episodes.values())
    env = process_env(settings, batch_size=3, control_maxlen=1000)
    doomed = await start_process("detector", env)
    survivor = await start_process("detector", env)
    try:
        doomed_name = f"{socket.gethostname()}:{doomed.pid}:detector"
        survivor_name = f"{socket.gethostname()}:{survivor.pid}:detector"
        leases = [settings.keys.lease(s) for s in range(settings.shards)]

        async def shared() -> bool:
            owners = {(await redis.get(k) or b"").decode() for k in leases}
            return owners == {doomed_name, survivor_name}

        await wait_for(shared, 30, "the two detectors to split the shards")

        async def partly_scored() -> bool:
            done = sum(len(v) for v in (await verdict_steps(redis, settings, episodes)).values())
            return done > total // 5

        await wait_for(partly_scored, 60, "a fifth of the steps to be scored")
        doomed.kill()  # SIGKILL: no release, no ack of the batch in hand
        await doomed.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        doomed_shards = [
            s for s, k in enumerate(leases) if await redis.get(k) == doomed_name.encode()
        ]
        assert doomed_shards

        async def reclaimed() -> bool:
            for shard in doomed_shards:
                if await redis.get(leases[shard]) != survivor_name.encode():
                    return False
                pending = await redis.xpending_range(
                    settings.keys.steps(shard),
                    DETECTOR_GROUP,
                    "-",
                    "+",
                    100,
                    consumername=doomed_name,
                )
                if pending:
                    return False
            return True

        await wait_for(reclaimed, 30, "the survivor to reclaim the dead one's shards")
        reclaim_s = loop.time() - killed_at
        # the lease lapses after claim_idle_ms; the survivor's next heartbeat takes it over
        assert reclaim_s < 2 * settings.claim_idle_ms / 1000, reclaim_s

        async def all_scored() -> bool:
            done = sum(len(v) for v in (await verdict_steps(redis, settings, episodes)).values())
            return done >= total

        await wait_for(all_scored, 120, "every step to get a verdict")

        async def no_more() -> bool:
            done = sum(len(v) for v in (await verdict_steps(redis, settings, episodes)).values())
            return done == total

        await stays(no_more, 0.3, "exactly one verdict per step")  # no duplicate arrives
    finally:
        for p in (doomed, survivor):
            if p.returncode is None:
                p.terminate()
                await p.wait()

    flips_seen = set()
    for shard in range(settings.shards):
        for _, fields in await redis.xrange(settings.keys.flips(shard)):
            f = decode(fields)
            flips_seen.add((f.episode_id, f.step, f.flag))
        assert (await redis.xpending(settings.keys.steps(shard), DETECTOR_GROUP))["pending"] == 0
    expected_flips = set()
    for episode_id, (spec, events) in episodes.items():
        verdicts = [
            e for e in await control_events(redis, settings, episode_id) if e.kind == "verdict"
        ]
        assert [v.step for v in verdicts] == [e.step for e in events], episode_id  # once each
        scores = offline(spec, events)
        assert [v.runaway_index for v in verdicts] == [s.runaway_index for s in scores]
        assert [v.flags for v in verdicts] == [sorted(s.flags) for s in scores]
        expected_flips |= {(episode_id, s.step, d.flag) for s in scores for d in s.detections}
    assert flips_seen == expected_flips
    # the running totals (the live page's header) counted every step and flip exactly once
    totals: dict[str, int] = {}
    for shard in range(settings.shards):
        for name, value in (await redis.hgetall(settings.keys.totals(shard))).items():
            totals[name.decode()] = totals.get(name.decode(), 0) + int(value)
    assert totals["steps"] == sum(len(events) for _, events in episodes.values())
    flips_total = sum(v for k, v in totals.items() if k.startswith("flips:"))
    assert flips_total == len(expected_flips)
