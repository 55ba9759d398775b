"""The jobs stream: a dead worker's job deep in a long pending list is reclaimed (the
worker follows XAUTOCLAIM's cursor), finished jobs are trimmed, a queue past its cap is
refused, and the dead-letter stream's key comes from schemas/keys.py."""

import pytest

from schemas.keys import WORKER_GROUP
from schemas.wire import encode_job
from tests.pipeline_helpers import run_pipeline, running_worker, spec
from tests.waiting import wait_for
from workers.jobs import QueueFull, submit_jobs
from workers.worker import Worker


async def test_dead_workers_job_deep_in_a_long_pending_list_is_reclaimed(redis, settings):
    # 300 jobs held by a live worker (freshly delivered, so not idle), then one whose
    # worker died long ago. XAUTOCLAIM scans at most 10 x COUNT entries per call: a worker
    # with one free slot that restarted at 0-0 every heartbeat would never get to it.
    settings = settings.model_copy(
        update={"claim_idle_ms": 60_000, "heartbeat_s": 0.02, "concurrency": 1}
    )
    jobs = settings.keys.jobs()
    await redis.xgroup_create(jobs, WORKER_GROUP, id="0", mkstream=True)
    filler = spec("filler", "homeostasis", steps=5)
    pipe = redis.pipeline(transaction=False)
    for i in range(300):
        pipe.xadd(jobs, encode_job(filler.model_copy(update={"episode_id": f"held{i}"})))
    await pipe.execute()
    await redis.xreadgroup(WORKER_GROUP, "alive", {jobs: ">"}, count=300)
    deep = await redis.xadd(jobs, encode_job(spec("deep", "homeostasis", steps=5)))
    await redis.xreadgroup(WORKER_GROUP, "dead", {jobs: ">"}, count=1)
    await redis.xclaim(jobs, WORKER_GROUP, "dead", 0, [deep], idle=120_000, retrycount=1)

    async with running_worker(redis, settings, Worker(redis, settings, name="rescuer")) as w:
        await wait_for(
            lambda: [r.episode_id for r in w.results] == ["deep.a2"],
            20,
            "the dead worker's job to be reclaimed and run",
        )
    held = await redis.xpending_range(jobs, WORKER_GROUP, "-", "+", 1000, consumername="alive")
    assert len(held) == 300  # the live worker's jobs were left alone


async def test_finished_jobs_are_trimmed_from_the_stream(redis, settings):
    specs = [spec(f"t{i}", "homeostasis", steps=3, seed=i) for i in range(8)]
    async with running_worker(redis, settings, Worker(redis, settings, name="trimmer")) as w:
        await submit_jobs(redis, settings.keys, specs)
        await wait_for(lambda: len(w.results) == 8, 30, "all 8 episodes to end")

        async def trimmed() -> bool:
            return await redis.xlen(settings.keys.jobs()) <= 1  # the last delivered one

        await wait_for(trimmed, 10, "the finished jobs to be trimmed")
    assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 0


async def test_a_submission_past_the_cap_is_refused_and_nothing_is_queued(redis, settings):
    specs = [spec(f"q{i}", "homeostasis", steps=3) for i in range(150)]
    await submit_jobs(redis, settings.keys, specs[:100], maxlen=120)
    with pytest.raises(QueueFull, match="100 jobs"):
        await submit_jobs(redis, settings.keys, specs[100:], maxlen=120)
    assert await redis.xlen(settings.keys.jobs()) == 100


async def test_bad_jobs_go_to_the_jobs_dead_letter_key(redis, settings):
    await redis.xadd(settings.keys.jobs(), {"k": "job", "v": "1", "d": "{}"})
    results, _ = await run_pipeline(redis, settings, [spec("fine", "homeostasis", steps=3)])
    assert [r.episode_id for r in results] == ["fine"]
    dead = await redis.xrange(settings.keys.jobs_deadletter())
    assert len(dead) == 1 and settings.keys.jobs_deadletter().startswith(settings.key_prefix)
