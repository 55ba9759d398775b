"""Memory: per active episode in a worker and a detector, detector state, Redis.

- detector: 10,000 episodes started and scored for ``--steps`` steps each by one
  ``runaway-monitor detector`` process, as deployed; its RSS, its growth per episode, and
  the checkpointed state bytes per episode in Redis (spec + scorer state).
- worker: ``--worker-episodes`` episodes held active at once (no detector answers, so
  each stops at ``max_inflight_steps``); RSS growth per active episode.
- Redis: used memory after the detector run, with the default stream trimming.

    python bench/memory.py [--episodes 10000] [--steps 20] [--json]
"""

import argparse
import asyncio
import gc
import os
import sys
import time
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_redis, print_table, rss_bytes, run, start_detectors
from detectors.service import DetectorService
from schemas.events import EpisodeStarted, StepEvent
from schemas.redis_io import connect
from schemas.settings import Settings
from schemas.wire import encode
from workers.jobs import demo_specs, submit_jobs
from workers.worker import Worker


async def detector_memory(url: str, settings: Settings, episodes: int, steps: int) -> dict:
    """A real ``runaway-monitor detector`` process: its RSS before and after it holds
    ``episodes`` episodes (nothing of this bench process is counted)."""
    redis = connect(url)
    keys = settings.keys
    await DetectorService(redis, settings, name="mem-setup").ensure_groups()
    (proc,) = await start_detectors(url, settings, 1)
    try:
        await asyncio.sleep(1.0)  # settled after start-up
        before = rss_bytes(proc.pid)
        specs = demo_specs(episodes, steps, "mem", seed=0)
        # published in chunks and scored as they come, so the streams stay realistic
        for i in range(0, episodes, 1000):
            pipe = redis.pipeline(transaction=False)
            for spec in specs[i : i + 1000]:
                stream = keys.steps(keys.shard_of(spec.episode_id))
                pipe.xadd(stream, encode(EpisodeStarted(episode_id=spec.episode_id, spec=spec)))
                names = spec.objectives.names
                for step in range(1, steps + 1):
                    ev = StepEvent(
                        episode_id=spec.episode_id,
                        step=step,
                        observation=dict.fromkeys(names, 5.0),
                        action=dict.fromkeys(names, 1.0),
                    )
                    pipe.xadd(stream, encode(ev), maxlen=settings.steps_maxlen, approximate=True)
            await pipe.execute()
        await _all_scored(redis, settings, timeout_s=300)
        await asyncio.sleep(0.5)
        after = rss_bytes(proc.pid)
    finally:
        proc.terminate()
        await proc.wait()
    active = state_bytes = 0
    for shard in range(keys.shards):
        async for field, value in redis.hscan_iter(keys.detector_state(shard), count=1000):
            if not field.endswith(b":spec"):
                active += 1
            state_bytes += len(value)
    info = await redis.info("memory")
    await redis.aclose()
    return {
        "detector_episodes": active,
        "detector_rss_mb": round(after / 2**20, 1),
        "detector_rss_per_episode_bytes": round((after - before) / max(active, 1)),
        "detector_state_bytes_per_episode": round(state_bytes / max(active, 1)),
        "redis_used_memory_mb": round(info["used_memory"] / 2**20, 1),
        "redis_bytes_per_step_entry": round(info["used_memory"] / (episodes * (steps + 1))),
    }


async def _all_scored(redis: Any, settings: Settings, timeout_s: float) -> None:
    """Wait until the detectors' group has read and acked every entry of every shard."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        groups = [await redis.xinfo_groups(settings.keys.steps(s)) for s in range(settings.shards)]
        if all(g["lag"] == 0 and g["pending"] == 0 for gs in groups for g in gs):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the detector did not score everything in time")


async def worker_memory(url: str, settings: Settings, episodes: int) -> dict:
    redis = connect(url)
    specs = demo_specs(episodes, 1000, "wmem", seed=1)
    settings = settings.model_copy(update={"concurrency": episodes})
    worker = Worker(redis, settings, name="mem-worker")
    gc.collect()
    before = rss_bytes()
    await submit_jobs(redis, settings.keys, specs)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + 120
    target = episodes * settings.max_inflight_steps
    while time.monotonic() < deadline:
        if worker.steps_played >= target:
            break
        await asyncio.sleep(0.2)
    gc.collect()
    after = rss_bytes()
    active = worker.active
    settings_grace = settings.model_copy(update={"shutdown_grace_s": 0})
    worker.settings = settings_grace
    stop.set()
    await task
    await redis.aclose()
    return {
        "worker_active_episodes": active,
        "worker_rss_per_episode_bytes": round((after - before) / max(active, 1)),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_redis() as (url, prefix):
        settings = Settings(redis_url=url, key_prefix=prefix)
        out = {"episodes": args.episodes, "steps_each": args.steps}
        out |= await detector_memory(url, settings, args.episodes, args.steps)
        wsettings = settings.model_copy(update={"key_prefix": prefix + "-w"})
        out |= await worker_memory(url, wsettings, args.worker_episodes)
        return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--worker-episodes", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = run(lambda: main(args))
    print_table("memory", list(out.items()), out if args.json else None)


if __name__ == "__main__":
    cli()
