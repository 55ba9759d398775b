"""``runaway-monitor demo``: the whole pipeline on many concurrent episodes, with a summary."""

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from detectors.service import DetectorService
from monitor.connections import connect, consumer_name
from monitor.embedded_redis import redis_url_or_embedded
from monitor.runtime import run
from monitor.summary import summarize
from schemas.settings import Settings
from workers.jobs import demo_specs, submit_jobs
from workers.worker import Worker


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a mix of episodes")
    p.add_argument("--episodes", type=int, default=200, help="episodes (default 200)")
    p.add_argument("--steps", type=int, default=100, help="steps per episode (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.steps < 1:
        print("error: --episodes and --steps must be at least 1", file=sys.stderr)
        return 2
    settings = Settings()
    summary = run(
        lambda stop: demo(settings, args.episodes, args.steps, args.seed, stop, not args.json)
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["errors"] == 0 and not summary.get("interrupted") else 1


async def demo(
    settings: Settings, episodes: int, steps: int, seed: int, stop: asyncio.Event, show: bool
) -> dict[str, Any]:
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    async with redis_url_or_embedded(settings.redis_url) as url:
        if settings.redis_url:  # a shared server: keep this run's keys apart
            settings = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-{run_id}"})
        redis = connect(url)
        try:
            return await _run(
                redis, settings, demo_specs(episodes, steps, run_id, seed), stop, show
            )
        finally:
            if settings.redis_url:
                await _delete_keys(redis, settings.key_prefix)
            await redis.aclose()


async def _run(
    redis: aioredis.Redis, settings: Settings, specs: list, stop: asyncio.Event, show: bool
) -> dict[str, Any]:
    detector = DetectorService(redis, settings)
    worker = Worker(redis, settings, name=consumer_name("worker"))
    await detector.ensure_groups()
    await submit_jobs(redis, settings.keys, specs)
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
        done = len(worker.results)
        steps = worker.steps_played
        flips = sum(r.flips for r in worker.results) + worker.live_flips
        rate = steps / max(time.perf_counter() - started, 1e-9)
        line = (
            f"episodes {done}/{total} (active {worker.active})  steps {steps}  "
            f"flips {flips}  {rate:,.0f} steps/s"
        )
        print(
            f"\r{line}\x1b[K" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
        )


async def _delete_keys(redis: aioredis.Redis, prefix: str) -> None:
    with contextlib.suppress(Exception):
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.unlink(*keys[i : i + 500])


def print_summary(s: dict[str, Any]) -> None:
    print(file=sys.stderr)
    print(
        f"{s['episodes']} episodes, {s['steps']} steps in {s['wall_seconds']:.1f} s "
        f"({s['steps_per_second']:,.0f} steps/s)\n"
        f"flips {s['flips']} (in {s['episodes_flipped']} episodes), recoveries {s['recoveries']}, "
        f"self-imitation flags {s['self_imitation']}\n"
        f"detection lag p50 {s['detection_lag_ms_p50']:.1f} ms, "
        f"p99 {s['detection_lag_ms_p99']:.1f} ms\n"
        f"errors {s['errors']}  outcomes {s['outcomes']}"
    )
