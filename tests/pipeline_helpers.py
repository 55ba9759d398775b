"""Running workers and detectors together in a test, in burst mode."""

import asyncio

import redis.asyncio as aioredis

from detectors.service import DetectorService
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.settings import Settings
from schemas.wire import decode
from workers.environments.catalog import OBJECTIVES
from workers.jobs import submit_jobs
from workers.runner import EpisodeResult
from workers.worker import Worker


def spec(
    episode_id: str, env: str, agent: str = "reference", steps: int = 40, seed: int = 1, **options
) -> EpisodeSpec:
    return EpisodeSpec(
        episode_id=episode_id,
        environment=env,
        objectives=OBJECTIVES[env],
        seed=seed,
        steps=steps,
        agent=AgentSpec(kind=agent, options=options),
    )


async def run_pipeline(
    redis: aioredis.Redis,
    settings: Settings,
    specs: list[EpisodeSpec],
    worker: Worker | None = None,
    timeout_s: float = 60,
) -> tuple[list[EpisodeResult], DetectorService]:
    detector = DetectorService(redis, settings, name="test-detector")
    worker = worker or Worker(redis, settings, name="test-worker")
    await detector.ensure_groups()
    await submit_jobs(redis, settings.keys, specs)
    stop, detector_stop = asyncio.Event(), asyncio.Event()
    detector_task = asyncio.create_task(detector.run(detector_stop))
    try:
        results = await asyncio.wait_for(worker.run(stop, until_idle=True), timeout_s)
    finally:
        detector_stop.set()
        await detector_task
    return results, detector


async def stream_events(redis: aioredis.Redis, stream: str) -> list:
    return [decode(fields) for _, fields in await redis.xrange(stream)]
