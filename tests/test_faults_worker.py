"""A worker process killed with SIGKILL: its episodes are abandoned and re-run, never lost.

The killed worker cannot hand its jobs back. Another worker notices the jobs idle for
longer than the claim idle time (the dead one stopped heartbeating them), closes each
old attempt with ``EpisodeFinished(reason="abandoned")`` and re-runs the episode from its
seed as ``<id>.a2``. No episode is left without an end in the steps stream, every job is
acked, and no episode id has a step twice in the streams.
"""

import asyncio
import socket
from collections import Counter

from detectors.service import DetectorService
from schemas.keys import WORKER_GROUP
from tests.pipeline_helpers import process_env, spec, start_process, stream_events, wait_for
from workers.jobs import submit_jobs
from workers.worker import Worker


async def test_killed_worker_episodes_are_abandoned_and_rerun(redis, settings):
    settings = settings.model_copy(update={"claim_idle_ms": 800, "heartbeat_s": 0.1})
    specs = [spec(f"w{i}", "homeostasis", "drifting", steps=400, seed=i, flip_step=50)
             for i in range(4)]  # fmt: skip
    detector = DetectorService(redis, settings, name="det")
    await detector.ensure_groups()
    dstop = asyncio.Event()
    dtask = asyncio.create_task(detector.run(dstop))
    await submit_jobs(redis, settings.keys, specs)
    doomed = await start_process("worker", process_env(settings))
    try:
        doomed_name = f"{socket.gethostname()}:{doomed.pid}:worker"

        async def running() -> bool:
            pending = await redis.xpending_range(
                settings.keys.jobs(), WORKER_GROUP, "-", "+", 10, consumername=doomed_name
            )
            if len(pending) < len(specs):
                return False
            played = 0
            for shard in range(settings.shards):
                played += sum(
                    e.kind == "step" for e in await stream_events(redis, settings.keys.steps(shard))
                )
            return played > 100

        assert await wait_for(running, 30)
        doomed.kill()
        await doomed.wait()
        rescuer = Worker(redis, settings, name="rescuer")
        results = await asyncio.wait_for(rescuer.run(asyncio.Event(), until_idle=True), 60)
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
        dstop.set()
        await dtask

    assert sorted(r.episode_id for r in results) == [f"w{i}.a2" for i in range(4)]
    assert all(r.outcome == "done" and r.steps == 400 for r in results)
    assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 0
    events = []
    for shard in range(settings.shards):
        events += await stream_events(redis, settings.keys.steps(shard))
    finished = {e.episode_id: e.reason for e in events if e.kind == "episode_finished"}
    started = {e.episode_id for e in events if e.kind == "episode_started"}
    assert started <= set(finished), "an episode was left without an end"
    for i in range(4):
        assert finished[f"w{i}"] == "abandoned"
        assert finished[f"w{i}.a2"] == "done"
    steps = Counter((e.episode_id, e.step) for e in events if e.kind == "step")
    assert max(steps.values()) == 1  # no episode id has a step twice
    # the re-run is the same episode: same seed, so the same flips as a clean run
    clean_settings = settings.model_copy(update={"key_prefix": settings.key_prefix + "-clean"})
    from tests.pipeline_helpers import run_pipeline

    clean, _ = await run_pipeline(redis, clean_settings, specs)
    by_id = {r.episode_id: r for r in clean}
    for r in results:
        base = by_id[r.episode_id.removesuffix(".a2")]
        assert (r.flip_steps, r.recoveries) == (base.flip_steps, base.recoveries)
    keys = [k async for k in redis.scan_iter(match=f"{clean_settings.key_prefix}:*")]
    if keys:
        await redis.unlink(*keys)
