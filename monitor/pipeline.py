"""Running a set of episodes through the whole pipeline in one process (demo, run).

Workers and a detector run side by side against ``REDIS_URL`` or, without one, a private
embedded server. On a shared server the run gets its own key prefix, removed afterwards.
"""

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from detectors.service import DetectorService
from monitor.embedded_redis import redis_url_or_embedded
from monitor.summary import summarize
from schemas.episode import EpisodeSpec
from schemas.keys import Keys
from schemas.redis_io import connect, consumer_name
from schemas.settings import Settings
from workers.jobs import submit_jobs
from workers.runner import EpisodeResult
from workers.worker import AgentFactory, Worker


async def run_episodes(
    settings: Settings,
    specs: list[EpisodeSpec],
    stop: asyncio.Event,
    *,
    run_id: str,
    show_progress: bool = True,
    log_dir: Path | None = None,
    agent_factory: AgentFactory | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> dict[str, Any]:
    """Run ``specs`` to the end (or until ``stop``) and return the summary.

    ``on_result`` is called with each episode's result as it ends (after its log, if any,
    is written): experiments record finished episodes as they come, so a crash loses
    only the episodes still running.
    """
    async with redis_url_or_embedded(settings.redis_url) as url:
        if settings.redis_url:  # a shared server: keep this run's keys apart
            settings = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-{run_id}"})
        redis = connect(url)
        try:
            worker = Worker(
                redis,
                settings,
                name=consumer_name("worker"),
                log_dir=log_dir,
                agent_factory=agent_factory,
                on_result=on_result,
            )
            return await _run(redis, settings, worker, specs, stop, show_progress)
        finally:
            if settings.redis_url:
                await delete_keys(redis, settings.keys)
            await redis.aclose()


async def _run(
    redis: aioredis.Redis,
    settings: Settings,
    worker: Worker,
    specs: list[EpisodeSpec],
    stop: asyncio.Event,
    show: bool,
) -> dict[str, Any]:
    detector = DetectorService(redis, settings)
    await detector.ensure_groups()
    await submit_jobs(redis, settings.keys, specs, settings.jobs_maxlen)
    started = time.perf_counter()
    detector_stop = asyncio.Event()
    detector_task = asyncio.create_task(detector.run(detector_stop))
    progress = asyncio.create_task(_progress(worker, len(specs), started, show))
    try:
        results = await worker.run(stop, until_idle=True)
    finally:
        wall = time.perf_counter() - started
        progress.cancel()
        detector_stop.set()
        await asyncio.gather(detector_task, progress, return_exceptions=True)
    deadletters = 0
    for shard in range(settings.shards):
        deadletters += await redis.xlen(settings.keys.deadletter(shard))
    summary = summarize(results, wall, deadletters=deadletters, job_errors=len(worker.errors))
    if stop.is_set():
        summary["interrupted"] = True
    return summary


async def _progress(worker: Worker, total: int, started: float, show: bool) -> None:
    tty = sys.stderr.isatty()
    while show:
        await asyncio.sleep(0.5 if tty else 5.0)
        steps = worker.steps_played
        flips = sum(r.flips for r in worker.results) + worker.live_flips
        rate = steps / max(time.perf_counter() - started, 1e-9)
        line = (
            f"episodes {len(worker.results)}/{total} (active {worker.active})  "
            f"steps {steps}  flips {flips}  {rate:,.0f} steps/s"
        )
        end = "" if tty else "\n"
        print(f"\r{line}\x1b[K" if tty else line, end=end, file=sys.stderr, flush=True)


async def delete_keys(redis: aioredis.Redis, run_keys: Keys) -> None:
    with contextlib.suppress(Exception):
        keys = [k async for k in redis.scan_iter(match=run_keys.pattern(), count=1000)]
        for i in range(0, len(keys), 500):
            await redis.unlink(*keys[i : i + 500])


def print_summary(s: dict[str, Any]) -> None:
    print(file=sys.stderr)
    print(
        f"{s['episodes']} episodes, {s['steps']} steps in {s['wall_seconds']:.1f} s "
        f"({s['steps_per_second']:,.0f} steps/s)\n"
        f"flips {s['flips']} (in {s['episodes_flipped']} episodes), "
        f"resets {s['recoveries']}, reminders {s.get('reminders', 0)}, self-imitation flags "
        f"{s['self_imitation']}, over-exploitation flags {s.get('over_exploitation', 0)}\n"
        f"detection lag p50 {s['detection_lag_ms_p50']:.1f} ms, "
        f"p99 {s['detection_lag_ms_p99']:.1f} ms\n"
        f"errors {s['errors']}  outcomes {s['outcomes']}"
    )
