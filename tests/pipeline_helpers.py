"""Running workers and detectors together in a test, in burst mode."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from detectors.service import DetectorService
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.settings import Settings
from schemas.wire import decode
from tests.waiting import wait_for
from workers.environments.catalog import OBJECTIVES
from workers.jobs import submit_jobs
from workers.runner import EpisodeResult
from workers.worker import Worker

__all__ = ["wait_for"]  # re-exported: the one wait in the tests lives in tests/waiting.py


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


@dataclass
class RunningPipeline:
    """A detector and a worker (burst mode) running as tasks, for tests that act mid-run."""

    detector: DetectorService
    worker: Worker
    detector_stop: asyncio.Event
    detector_task: asyncio.Task
    worker_task: asyncio.Task

    async def finish(self, timeout_s: float) -> list[EpisodeResult]:
        """Wait for the worker to run out of jobs, then stop the detector."""
        try:
            return await asyncio.wait_for(self.worker_task, timeout_s)
        finally:
            self.detector_stop.set()
            await self.detector_task


async def start_pipeline(
    redis: aioredis.Redis,
    settings: Settings,
    specs: list[EpisodeSpec],
    worker: Worker | None = None,
) -> RunningPipeline:
    detector = DetectorService(redis, settings, name="test-detector")
    worker = worker or Worker(redis, settings, name="test-worker")
    await detector.ensure_groups()
    await submit_jobs(redis, settings.keys, specs)
    detector_stop = asyncio.Event()
    return RunningPipeline(
        detector,
        worker,
        detector_stop,
        asyncio.create_task(detector.run(detector_stop)),
        asyncio.create_task(worker.run(asyncio.Event(), until_idle=True)),
    )


@contextlib.asynccontextmanager
async def running_worker(
    redis: aioredis.Redis, settings: Settings, worker: Worker
) -> AsyncIterator[Worker]:
    """A detector and ``worker`` running (not in burst mode) for the block; both stopped
    gracefully after it."""
    detector = DetectorService(redis, settings, name="test-detector")
    await detector.ensure_groups()
    stops = asyncio.Event(), asyncio.Event()
    tasks = asyncio.create_task(detector.run(stops[0])), asyncio.create_task(worker.run(stops[1]))
    try:
        yield worker
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)


async def run_pipeline(
    redis: aioredis.Redis,
    settings: Settings,
    specs: list[EpisodeSpec],
    worker: Worker | None = None,
    timeout_s: float = 60,
) -> tuple[list[EpisodeResult], DetectorService]:
    running = await start_pipeline(redis, settings, specs, worker)
    return await running.finish(timeout_s), running.detector


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


async def start_process(
    role: str, env: dict[str, str], *args: str, log: "Path | None" = None
) -> "asyncio.subprocess.Process":
    """``python -m monitor ROLE ARGS``; its output goes to ``log`` when given."""
    import sys

    out = log.open("wb") if log is not None else asyncio.subprocess.DEVNULL
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            role,
            *args,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        if log is not None:
            out.close()  # the child has its own copy
