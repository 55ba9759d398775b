"""Garbage on the streams, and slow detectors.

Garbage: entries of every broken shape are written into the steps streams while a run
is going on. Each is dead-lettered with its reason and counted, and the run's own
episodes finish with every step scored. Garbage on an episode's control stream is
logged and skipped by its worker.

Slow detectors: with no detector running at all (the slowest one), every episode stops
``max_inflight_steps`` steps ahead of its verdicts, so the streams and the worker's
memory stay bounded; once a detector comes, the episodes finish.
"""

import asyncio

import orjson

from detectors.service import DetectorService
from schemas.events import StepEvent
from schemas.keys import DETECTOR_GROUP
from schemas.wire import MAX_ENTRY_BYTES, encode
from tests.pipeline_helpers import spec, start_pipeline, stream_events, wait_for
from workers.jobs import submit_jobs
from workers.worker import Worker


def garbage(episode_id: str) -> list[tuple[dict, str]]:
    good = encode(
        StepEvent(episode_id=episode_id, step=10_000, observation={"A": 1.0}, action={"A": 1.0})
    )
    data = orjson.loads(good["d"])
    return [
        ({"k": "step", "v": "1", "d": orjson.dumps({**data, "step": "ten"})}, "invalid step"),
        ({"k": "step", "v": "1", "d": orjson.dumps({**data, "action": {"A": "x"}})}, "invalid"),
        ({"k": "step", "v": "1"}, "missing field 'd'"),
        ({"d": good["d"]}, "missing field 'v'"),
        ({"k": "step", "v": "1", "d": b"x" * (MAX_ENTRY_BYTES + 1)}, "exceeds"),
        (
            {"k": "step", "v": "1", "d": b'{"kind": "step", "text": "' + b"y" * 200_000 + b'"'},
            "invalid",
        ),
        ({**good, "v": "2"}, "schema version"),
        ({"k": "step", "v": "1", "d": b"\xff\xfe\x00garbage"}, "invalid"),
        ({"k": "step", "v": "1", "d": orjson.dumps({**data, "kind": "nope"})}, "invalid"),
        ({**good, "k": "verdict"}, "does not match"),
        (
            encode(
                StepEvent(episode_id="nobody", step=1, observation={"A": 1.0}, action={"A": 1.0})
            ),
            "no episode_started",
        ),
    ]


async def test_garbage_is_dead_lettered_counted_and_the_run_goes_on(redis, settings):
    specs = [
        spec(f"g{i}", "homeostasis", "drifting", steps=60, seed=i, flip_step=20) for i in range(4)
    ]
    running = await start_pipeline(redis, settings, specs)
    detector, worker = running.detector, running.worker
    assert await wait_for(lambda: worker.steps_played > 20, 30)
    injected = 0
    for shard in range(settings.shards):
        for fields, _ in garbage("g0"):
            await redis.xadd(settings.keys.steps(shard), fields)
            injected += 1
    # and garbage addressed to a running episode on its shard's verdicts stream
    verdicts = settings.keys.verdicts(settings.keys.shard_of("g1"))
    await redis.xadd(verdicts, {"k": "verdict", "v": "1", "d": b"{", "e": "g1"})
    results = await running.finish(60)

    assert all(r.outcome == "done" and r.steps == 60 and len(r.lags_s) == 60 for r in results)
    reasons = []
    for shard in range(settings.shards):
        reasons += [
            f[b"reason"].decode() for _, f in await redis.xrange(settings.keys.deadletter(shard))
        ]
        assert (await redis.xpending(settings.keys.steps(shard), DETECTOR_GROUP))["pending"] == 0
    assert len(reasons) == injected
    for _, expected in garbage("g0"):
        assert sum(expected in r for r in reasons) >= settings.shards, expected
    counted = sum(
        s.value
        for s in detector.metrics.deadletters.collect()[0].samples
        if s.name.endswith("_total")
    )
    assert counted == injected


async def test_slow_detectors_hold_workers_back(redis, settings):
    settings = settings.model_copy(update={"max_inflight_steps": 3})
    specs = [spec(f"b{i}", "homeostasis", steps=200, seed=i) for i in range(5)]
    worker = Worker(redis, settings, name="wrk")
    await submit_jobs(redis, settings.keys, specs)
    wtask = asyncio.create_task(worker.run(asyncio.Event(), until_idle=True))
    # no detector: every episode plays max_inflight_steps and then waits for verdicts
    assert await wait_for(lambda: worker.steps_played == 5 * 3, 30)
    await asyncio.sleep(0.5)
    assert worker.steps_played == 5 * 3
    assert all(len(r.history.messages) <= 1 + 2 * 3 for r in worker._runners.values())
    published = 0
    for shard in range(settings.shards):
        published += sum(
            e.kind == "step" for e in await stream_events(redis, settings.keys.steps(shard))
        )
    assert published == 5 * 3
    # a detector arrives: the episodes go on to the end
    detector = DetectorService(redis, settings, name="late")
    dstop = asyncio.Event()
    dtask = asyncio.create_task(detector.run(dstop))
    results = await asyncio.wait_for(wtask, 60)
    dstop.set()
    await dtask
    assert all(r.steps == 200 and len(r.lags_s) == 200 for r in results)
