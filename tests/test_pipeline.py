"""Workers, Redis streams and detectors together: exactly once, recovery, shutdown."""

import asyncio
import os
import signal
import sys

from schemas.keys import DETECTOR_GROUP, WORKER_GROUP
from schemas.wire import encode
from tests.pipeline_helpers import run_pipeline, spec, stream_events
from tests.waiting import wait_for
from workers.environments.catalog import ENVIRONMENT_NAMES
from workers.jobs import submit_jobs


async def test_every_step_is_scored_exactly_once(redis, settings):
    specs = [
        spec(f"ep{i}", env, "drifting", steps=30, seed=i, flip_step=10)
        for i, env in enumerate(ENVIRONMENT_NAMES * 2)
    ]
    results, detector = await run_pipeline(redis, settings, specs)
    assert len(results) == len(specs)
    played = sum(r.steps for r in results)
    scored = sum(
        s.value for s in detector.metrics.steps.collect()[0].samples if s.name.endswith("_total")
    )
    assert scored == played
    for shard in range(settings.shards):
        steps_stream = settings.keys.steps(shard)
        assert (await redis.xpending(steps_stream, DETECTOR_GROUP))["pending"] == 0
        # finished episodes leave no detector state behind
        assert await redis.hlen(settings.keys.detector_state(shard)) == 0
        events = await stream_events(redis, steps_stream)
        by_episode: dict[str, list[int]] = {}
        for ev in events:
            if ev.kind == "step":
                by_episode.setdefault(ev.episode_id, []).append(ev.step)
        for steps in by_episode.values():
            assert steps == list(range(1, len(steps) + 1))  # no duplicates, in order
    assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 0
    # every verdict came back to its runner
    assert all(len(r.lags_s) == r.steps for r in results)


async def test_flip_gives_one_recovery_and_the_episode_goes_on(redis, settings):
    s = spec(
        "drift",
        "multiobjective-homeostasis",
        "drifting",
        steps=60,
        flip_step=20,
        relapse_after=1000,
    )
    (result,), _ = await run_pipeline(redis, settings, [s])
    assert result.outcome == "done" and result.steps == 60
    assert result.flips == 1 and result.recoveries == 1
    assert 20 <= result.flip_steps[0] <= 20 + s.detector.n_consecutive
    events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("drift")))
    applied = [e for e in events if e.kind == "recovery_applied"]
    assert len(applied) == 1
    assert applied[0].savepoint_step <= 20 and applied[0].messages_dropped > 0


async def test_duplicated_recovery_command_is_applied_once(redis, settings):
    s = spec(
        "dup", "multiobjective-homeostasis", "drifting", steps=50, flip_step=15, relapse_after=1000
    )
    verdicts = settings.keys.verdicts(settings.keys.shard_of("dup"))
    duplicated = asyncio.Event()

    async def duplicate_recovery_commands() -> None:
        last = "0-0"
        while not duplicated.is_set():
            reply = await redis.xread({verdicts: last}, block=20)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    if fields[b"k"] == b"recovery_command":
                        await redis.xadd(verdicts, fields)  # delivered a second time
                        await redis.xadd(verdicts, fields)  # and a third
                        duplicated.set()

    dup_task = asyncio.create_task(duplicate_recovery_commands())
    (result,), _ = await run_pipeline(redis, settings, [s])
    dup_task.cancel()
    assert duplicated.is_set()
    assert result.recoveries == 1
    events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("dup")))
    assert sum(e.kind == "recovery_applied" for e in events) == 1


async def test_bad_job_is_dead_lettered_and_others_run(redis, settings):
    good = spec("good", "homeostasis", steps=10)
    await redis.xadd(settings.keys.jobs(), {"k": "job", "v": "1", "d": '{"episode_id": "x"}'})
    bad_env = good.model_copy(update={"episode_id": "bad", "environment": "no-such-env"})
    results, _ = await run_pipeline(redis, settings, [bad_env, good])
    assert [r.episode_id for r in results] == ["good"]
    dead = await redis.xrange(settings.keys.jobs_deadletter())
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert any("objectives" in r for r in reasons)
    assert any("unknown environment" in r for r in reasons)


async def test_worker_process_hands_back_episodes_on_sigterm(redis, settings):
    """No detector runs, so episodes wait on verdicts; SIGTERM must still end the worker."""
    specs = [spec(f"long{i}", "homeostasis", steps=1000) for i in range(3)]
    await submit_jobs(redis, settings.keys, specs)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "RUNAWAY_KEY_PREFIX": settings.key_prefix,
        "RUNAWAY_SHARDS": str(settings.shards),
        "RUNAWAY_SHUTDOWN_GRACE_S": "0.3",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )

    async def all_three_started() -> bool:
        if (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] != 3:
            return False
        started = set()
        for shard in range(settings.shards):
            started |= {
                e.episode_id
                for e in await stream_events(redis, settings.keys.steps(shard))
                if e.kind == "episode_started"
            }
        return started == {"long0", "long1", "long2"}

    await wait_for(all_three_started, 30, "the worker process to start all three episodes")
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()[-2000:]
    # the jobs were not acked: another worker can take them over
    assert (await redis.xpending(settings.keys.jobs(), WORKER_GROUP))["pending"] == 3
    finished = []
    for shard in range(settings.shards):
        finished += [
            e
            for e in await stream_events(redis, settings.keys.steps(shard))
            if e.kind == "episode_finished"
        ]
    assert sorted(e.episode_id for e in finished) == ["long0", "long1", "long2"]
    assert {e.reason for e in finished} == {"cancelled"}


async def test_publisher_batches_concurrent_events(redis, settings):
    from schemas.events import StepEvent
    from workers.publisher import StreamPublisher

    publisher = StreamPublisher(redis)
    stream = settings.keys.steps(0)
    events = [
        StepEvent(episode_id=f"e{i}", step=1, observation={"A": 1}, action={"A": 1})
        for i in range(50)
    ]
    await asyncio.gather(*(publisher.publish(stream, e, 1000) for e in events))
    await publisher.aclose()
    stored = await redis.xrange(stream)
    assert [f[b"d"] for _, f in stored] == [encode(e)["d"] for e in events]


async def test_worker_episodes_are_listed_by_the_sidecar_api(redis, settings):
    from tests.api_helpers import api_client

    specs = [spec(f"listed{i}", "homeostasis", "drifting", steps=20, flip_step=5) for i in range(2)]
    results, _ = await run_pipeline(redis, settings, specs)
    assert all(r.outcome == "done" for r in results)
    async with api_client(settings, detector=False) as client:
        listing = await (await client.get("/v1/episodes", params={"status": "finished"})).json()
        by_id = {e["episode_id"]: e for e in listing["items"]}
        assert {"listed0", "listed1"} <= set(by_id)
        assert by_id["listed0"]["source"] == "worker"
        assert by_id["listed0"]["environment"] == "homeostasis"
        assert by_id["listed0"]["last_step"] == 20 and by_id["listed0"]["flip_count"] >= 1
        # the page's drill-down and totals hold worker episodes too (the detector writes them)
        trace = (await (await client.get("/v1/episodes/listed0/steps")).json())["items"]
        assert [t["step"] for t in trace] == list(range(1, 21))
        assert any(t["verdict"] == "reset" for t in trace)
        totals = await (await client.get("/v1/totals")).json()
        assert totals["steps"] == 40
        assert totals["flips"] == sum(e["flip_count"] for e in by_id.values()) >= 2
        # the sidecar does not take steps for an episode a worker runs
        body = {"step": 21, "observation": {"level": 100}, "action": {"level": 0}}
        response = await client.post("/v1/episodes/listed0/steps", json=body)
        assert response.status == 404
