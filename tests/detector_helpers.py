"""Recorded trajectories on the steps streams, and what the detector made of them."""

import redis.asyncio as aioredis

from detectors.scoring import EpisodeScorer
from detectors.service import DetectorService
from schemas.events import EpisodeStarted, StepEvent
from schemas.settings import Settings
from schemas.wire import decode, encode
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
