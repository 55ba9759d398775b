"""Redis crashes (SIGKILL) mid-run and comes back on the same socket.

"Nothing acknowledged is lost" here means: every write Redis acknowledged survives the
crash. The embedded server keeps nothing on disk by default, so this test runs it with
``appendonly yes, appendfsync always``, which is how a deployment that needs it must run
Redis. While Redis is down, workers and detectors report unready and retry with backoff;
once it is back they carry on, and every step is scored and answered exactly once.
"""

import asyncio

from monitor.embedded_redis import EmbeddedRedis
from schemas.keys import DETECTOR_GROUP, WORKER_GROUP
from schemas.redis_io import connect
from tests.pipeline_helpers import spec, start_pipeline, stream_events, wait_for


async def test_redis_restart_mid_run(settings):
    server = EmbeddedRedis(appendonly=True)
    await server.start()
    redis = connect(server.url)
    try:
        settings = settings.model_copy(update={"redis_url": server.url})
        specs = [
            spec(
                f"r{i}",
                "multiobjective-homeostasis",
                "drifting",
                steps=150,
                seed=i,
                flip_step=40,
                relapse_after=1000,
            )
            for i in range(6)
        ]
        running = await start_pipeline(redis, settings, specs)
        detector, worker, wtask = running.detector, running.worker, running.worker_task

        async def halfway() -> bool:
            return worker.steps_played > 150 and detector.ready and worker.ready

        assert await wait_for(halfway, 30)
        await server.stop(keep=True, kill=True)  # a crash, not a shutdown

        async def both_unready() -> bool:
            return not detector.ready and not worker.ready

        assert await wait_for(both_unready, 10)
        assert not wtask.done()
        await asyncio.sleep(0.5)
        await server.start()  # same socket, data from the append-only file
        results = await asyncio.wait_for(asyncio.shield(wtask), 90)
        assert await wait_for(lambda: _true(detector.ready), 10)  # ready again
        await running.finish(10)

        assert sorted(r.episode_id for r in results) == sorted(s.episode_id for s in specs)
        assert all(r.outcome == "done" and r.steps == 150 for r in results)
        # every step answered exactly once, in order
        assert all(len(r.lags_s) == 150 for r in results)
        assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 0
        for shard in range(settings.shards):
            stream = settings.keys.steps(shard)
            assert (await redis.xpending(stream, DETECTOR_GROUP))["pending"] == 0
            steps: dict[str, set[int]] = {}
            for ev in await stream_events(redis, stream):
                if ev.kind == "step":
                    steps.setdefault(ev.episode_id, set()).add(ev.step)
            for played in steps.values():  # every acknowledged step is still there
                assert played == set(range(1, 151))
    finally:
        await redis.aclose()
        await server.stop()


async def _true(value: bool) -> bool:
    return value
