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
from tests.pipeline_helpers import process_env, start_process, wait_for
from tests.test_detector_consumer import control_events, offline, publish_recordings


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

        assert await wait_for(shared, 30), "the two detectors never split the shards"

        async def partly_scored() -> bool:
            done = sum(len(v) for v in (await verdict_steps(redis, settings, episodes)).values())
            return done > total // 5

        assert await wait_for(partly_scored, 60)
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

        assert await wait_for(reclaimed, 30, interval_s=0.02)
        reclaim_s = loop.time() - killed_at
        # the lease lapses after claim_idle_ms; the survivor's next heartbeat takes it over
        assert reclaim_s < 2 * settings.claim_idle_ms / 1000, reclaim_s

        async def all_scored() -> bool:
            done = sum(len(v) for v in (await verdict_steps(redis, settings, episodes)).values())
            return done >= total

        assert await wait_for(all_scored, 120)
        await asyncio.sleep(0.3)  # nothing more (no duplicate) may arrive
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
