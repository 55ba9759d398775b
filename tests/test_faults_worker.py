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
from schemas.wire import decode_job
from tests.pipeline_helpers import process_env, spec, start_process, stream_events
from tests.waiting import stays, wait_for
from workers.jobs import submit_jobs
from workers.worker import Worker


async def test_killed_worker_episodes_are_abandoned_and_rerun(redis, settings):
    settings = settings.model_copy(update={"claim_idle_ms": 800, "heartbeat_s": 0.1})
    specs = [
        spec(f"w{i}", "homeostasis", "drifting", steps=400, seed=i, flip_step=50) for i in range(4)
    ]
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

        await wait_for(running, 30, "the doomed worker to run all jobs past 100 steps")
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
    keys = [k async for k in redis.scan_iter(match=clean_settings.keys.pattern())]
    if keys:
        await redis.unlink(*keys)


async def test_worker_refreshes_its_jobs_and_cancels_one_taken_over(redis, settings):
    """The heartbeat keeps the worker's jobs fresh (idle well under the claim time); a job
    another worker took over is noticed and its episode cancelled. The thief then never
    heartbeats, so after the claim idle time the job is reclaimed and re-run (``.a3``)."""
    from tests.pipeline_helpers import start_pipeline

    settings = settings.model_copy(update={"heartbeat_s": 0.05, "claim_idle_ms": 5000})
    specs = [
        spec(f"hb{i}", "homeostasis", "drifting", steps=400, seed=i, flip_step=50) for i in range(3)
    ]
    # 5 ms per step: an episode lasts at least 2 s, so hb1 is surely mid-episode when it
    # is stolen (on a fast box 400 unpaced steps can end before the steal is noticed)
    worker = Worker(redis, settings, name="test-worker", agent_factory=_slow_agents(settings))
    running = await start_pipeline(redis, settings, specs, worker=worker)
    worker, jobs = running.worker, settings.keys.jobs()

    async def pending() -> list:
        return await redis.xpending_range(jobs, WORKER_GROUP, "-", "+", 10)

    await wait_for(lambda: _len_is(pending, 3), 10, "all three jobs to be taken")

    async def refreshed() -> bool:
        return all(p["time_since_delivered"] < 400 for p in await pending())

    await stays(refreshed, 0.6, "every job's idle time under 400 ms")  # heartbeats refresh
    stolen = await _job_of(redis, jobs, "hb1")
    await redis.xclaim(jobs, WORKER_GROUP, "thief", min_idle_time=0, message_ids=[stolen])

    async def hb1_cancelled() -> bool:
        events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("hb1")))
        return any(e.kind == "episode_finished" and e.episode_id == "hb1" for e in events)

    await wait_for(hb1_cancelled, 5, "the stolen episode to be cancelled")
    assert worker.active == 2
    results = await running.finish(60)
    assert sorted(r.episode_id for r in results) == ["hb0", "hb1.a3", "hb2"]
    assert await pending() == []


async def _job_of(redis, jobs: str, episode_id: str) -> bytes:
    """The jobs entry id of an episode, from the stream itself."""
    for entry_id, fields in await redis.xrange(jobs):
        if decode_job(fields).episode_id == episode_id:
            return entry_id
    raise AssertionError(f"no job for {episode_id}")


async def _len_is(pending, n: int) -> bool:
    return len(await pending()) == n


def _slow_agents(settings):
    """The default agents, each answer delayed by 5 ms."""
    from schemas.metrics import WorkerMetrics
    from workers.worker import AgentBuilder

    build = AgentBuilder(settings, WorkerMetrics())

    class Slow:
        def __init__(self, agent) -> None:
            self.agent = agent

        async def act(self, context):
            await asyncio.sleep(0.005)
            return await self.agent.act(context)

        def __getattr__(self, name: str):  # aclose, flip_steps, ...
            return getattr(self.agent, name)

    return lambda spec, env: Slow(build(spec, env))


async def test_a_slow_ack_does_not_get_a_finished_episode_run_again(redis, settings):
    """Between an episode's end and its job's ack landing (a stalled loop, a slow Redis)
    the job is still heartbeated: it must not look abandoned and be re-run."""
    from tests.pipeline_helpers import start_pipeline

    settings = settings.model_copy(update={"claim_idle_ms": 200, "heartbeat_s": 0.05})
    worker = Worker(redis, settings, name="slow-acker")
    submit = worker._bookkeeping.submit

    async def slow_submit(fill) -> None:
        await asyncio.sleep(0.6)  # three claim idle times
        await submit(fill)

    worker._bookkeeping.submit = slow_submit  # type: ignore[method-assign]
    specs = [spec(f"sa{i}", "homeostasis", "reference", steps=5, seed=i) for i in range(4)]
    running = await start_pipeline(redis, settings, specs, worker=worker)
    results = await running.finish(60)
    assert sorted(r.episode_id for r in results) == ["sa0", "sa1", "sa2", "sa3"]
    assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 0
    events = []
    for shard in range(settings.shards):
        events += await stream_events(redis, settings.keys.steps(shard))
    assert {e.episode_id for e in events} == {"sa0", "sa1", "sa2", "sa3"}  # no re-run
    assert not [e for e in events if e.kind == "episode_finished" and e.reason == "abandoned"]
