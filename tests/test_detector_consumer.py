"""The detector consumer against a real Redis: order, exactly-once, dead letters, reclaim."""

import asyncio

import redis.asyncio as aioredis

from detectors.scoring import EpisodeScorer
from detectors.service import DetectorService
from schemas.events import EpisodeStarted, StepEvent
from schemas.keys import DETECTOR_GROUP
from schemas.settings import Settings
from schemas.wire import decode, encode
from tests.conftest import RECORDINGS
from workers.recordings import events_from_recording, read_tsv


async def publish_recordings(redis: aioredis.Redis, settings: Settings, paths) -> dict:
    """XADD every recording's start and steps; episode id -> (spec, events)."""
    keys = settings.keys
    episodes = {}
    pipe = redis.pipeline(transaction=False)
    for path in paths:
        spec, events = events_from_recording(read_tsv(path))
        episodes[spec.episode_id] = (spec, events)
        stream = keys.steps(keys.shard_of(spec.episode_id))
        pipe.xadd(stream, encode(EpisodeStarted(episode_id=spec.episode_id, spec=spec)))
        for ev in events:
            pipe.xadd(stream, encode(ev))
    await pipe.execute()
    return episodes


async def control_events(redis: aioredis.Redis, settings: Settings, episode_id: str) -> list:
    entries = await redis.xrange(settings.keys.control(episode_id))
    return [decode(fields) for _, fields in entries]


def scored(service: DetectorService) -> float:
    return sum(
        s.value for s in service.metrics.steps.collect()[0].samples if s.name.endswith("_total")
    )


def offline(spec, events: list[StepEvent]) -> list:
    scorer = EpisodeScorer(spec)
    return [scorer.update(ev) for ev in events]


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
    assert service.metrics.steps.labels(spec.environment)._value.get() == len(events)
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
    # let it score part of the load, then kill it without a graceful stop
    for _ in range(200):
        await asyncio.sleep(0.01)
        if scored(first) > 50:
            break
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    # simulate a SIGKILL: the leases were released on cancel, so re-take them as the dead one
    for shard in range(settings.shards):
        await redis.set(settings.keys.lease(shard), "doomed", px=settings.claim_idle_ms)

    second = DetectorService(redis, settings, name="rescuer")
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(second.run(stop2))
    for _ in range(500):
        await asyncio.sleep(0.02)
        done = 0
        for episode_id in episodes:
            evs = await control_events(redis, settings, episode_id)
            done += len({e.step for e in evs if e.kind == "verdict"})
        if done >= total:
            break
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
