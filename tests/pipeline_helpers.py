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


def process_env(settings: Settings, **extra: object) -> dict[str, str]:
    """Environment for a ``python -m monitor worker|detector`` subprocess of this test."""
    import os

    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "RUNAWAY_KEY_PREFIX": settings.key_prefix,
        "RUNAWAY_SHARDS": str(settings.shards),
        "RUNAWAY_CLAIM_IDLE_MS": str(settings.claim_idle_ms),
        "RUNAWAY_HEARTBEAT_S": str(settings.heartbeat_s),
        "RUNAWAY_BLOCK_MS": str(settings.block_ms),
    }
    env.update({f"RUNAWAY_{k.upper()}": str(v) for k, v in extra.items()})
    return env


async def start_process(role: str, env: dict[str, str]) -> "asyncio.subprocess.Process":
    import sys

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", role, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.05) -> bool:
    """Poll an async predicate until true; False after ``timeout_s`` (tests then fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval_s)
    return False
