"""The detector consumer against a real Redis: order, exactly-once, dead letters, reclaim."""

import asyncio

from detectors.service import DetectorService
from schemas.keys import DETECTOR_GROUP
from schemas.wire import encode
from tests.conftest import RECORDINGS
from tests.detector_helpers import control_events, offline, publish_recordings, scored
from tests.waiting import wait_for


async def test_online_verdicts_equal_offline_scores(redis, settings):
    settings = settings.model_copy(update={"control_maxlen": 1000})
    episodes = await publish_recordings(redis, settings, RECORDINGS[:12])
    service = DetectorService(redis, settings, name="d1")
    await service.ensure_groups()
    handled = await service.run_until_idle()
    assert handled == sum(len(ev) + 1 for _, ev in episodes.values())
    for episode_id, (spec, events) in episodes.items():
        verdicts = [
            e for e in await control_events(redis, settings, episode_id) if e.kind == "verdict"
        ]
        scores = offline(spec, events)
        assert [v.step for v in verdicts] == [s.step for s in scores]
        assert [v.runaway_index for v in verdicts] == [s.runaway_index for s in scores]
        assert [v.flags for v in verdicts] == [sorted(s.flags) for s in scores]
    for shard in range(settings.shards):
        pending = await redis.xpending(settings.keys.steps(shard), DETECTOR_GROUP)
        assert pending["pending"] == 0


async def test_malformed_entries_are_dead_lettered_and_the_rest_scored(redis, settings):
    episodes = await publish_recordings(redis, settings, RECORDINGS[:1])
    ((episode_id, (spec, events)),) = episodes.items()
    stream = settings.keys.steps(settings.keys.shard_of(episode_id))
    await redis.xadd(stream, {"k": "step", "v": "1", "d": "{not json"})
    await redis.xadd(stream, {"k": "step", "v": "99", "d": "{}"})
    await redis.xadd(stream, {"unrelated": "x"})
    bad_step = events[0].model_copy(update={"step": 500, "action": {"Z": 1.0}})
    await redis.xadd(stream, encode(bad_step))
    service = DetectorService(redis, settings, name="d1")
    await service.run_until_idle()
    dead = await redis.xrange(settings.keys.deadletter(settings.keys.shard_of(episode_id)))
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert len(reasons) == 4
    assert any("schema version" in r for r in reasons)
    assert any("missing field" in r for r in reasons)
    assert any("objectives do not match" in r for r in reasons)
    registry = service.metrics.registry
    steps = registry.get_sample_value(
        "runaway_detector_steps_total", {"environment": spec.environment}
    )
    assert steps == len(events)
    dead_total = service.metrics.deadletters.collect()[0].samples
    assert sum(s.value for s in dead_total if s.name.endswith("_total")) == 4
    pending = await redis.xpending(stream, DETECTOR_GROUP)
    assert pending["pending"] == 0


async def test_killed_detector_loses_no_step(redis, settings):
    """A detector cancelled mid-run without acking: a second one reclaims and finishes."""
    settings = settings.model_copy(update={"batch_size": 7, "control_maxlen": 1000})
    episodes = await publish_recordings(redis, settings, RECORDINGS[:8])
    total = sum(len(ev) for _, ev in episodes.values())

    first = DetectorService(redis, settings, name="doomed")
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    # let it score part of the load, then cancel it: no graceful stop, its batch unacked
    await wait_for(lambda: scored(first) > 50, 30, "the first detector to score 50 steps")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    # a cancelled task still releases its leases (a SIGKILLed process would not: see
    # test_faults_detector.py); re-take them as the dead one, so the rescuer must wait
    # for them to lapse as it would after a crash
    for shard in range(settings.shards):
        await redis.set(settings.keys.lease(shard), "doomed", px=settings.claim_idle_ms)

    second = DetectorService(redis, settings, name="rescuer")
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(second.run(stop2))

    async def all_answered() -> bool:
        done = 0
        for episode_id in episodes:
            evs = await control_events(redis, settings, episode_id)
            done += len({e.step for e in evs if e.kind == "verdict"})
        return done >= total

    try:
        await wait_for(all_answered, 60, "every step to get a verdict")
    finally:
        stop2.set()
        await task2
    for episode_id, (spec, events) in episodes.items():
        verdicts = [
            e for e in await control_events(redis, settings, episode_id) if e.kind == "verdict"
        ]
        steps = [v.step for v in verdicts]
        assert sorted(steps) == list(range(1, len(events) + 1)), episode_id  # each once
        scores = offline(spec, events)
        by_step = {v.step: v for v in verdicts}
        assert [by_step[s.step].runaway_index for s in scores] == [s.runaway_index for s in scores]
