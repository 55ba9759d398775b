"""End-to-end throughput against the raw Redis ceiling, measured side by side.

pipeline: workers with scripted agents -> steps streams -> detectors -> verdicts, flips
and recoveries back to the workers (the demo's mix of episodes), as deployed on 2 cores:
the worker in this process, one ``runaway-monitor detector`` process beside it.
raw: the very step entries the pipeline wrote, XADDed again with pipelined XADD and read
back with XREADGROUP + XACK by plain redis-py, in the same run and on the same server.
``ratio`` = pipeline steps/s / raw entries/s. ``in_process_*``: the same run with the
detector in the worker's process (one core for both, as ``runaway-monitor demo`` runs).

    python bench/pipeline.py [--episodes 200] [--steps 100] [--detectors 1,2,4] [--json]

``--detectors`` also runs the pipeline with that many separate detector processes. Every
run must give the same per-episode results (steps, flips and where, recoveries).
"""

import argparse
import asyncio
import os
import sys
import time
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis.asyncio as aioredis

from bench.common import bench_redis, cpu_seconds, print_table, run, start_detectors
from detectors.service import DetectorService
from schemas.redis_io import connect, stream_entries
from schemas.settings import Settings
from workers.jobs import demo_specs, submit_jobs
from workers.runner import EpisodeResult
from workers.worker import Worker

RAW_BATCH = 1000


def outcome_key(r: EpisodeResult) -> tuple:
    """What must be identical between runs: steps, flips and where, recoveries."""
    return (r.steps, r.flips, tuple(r.flip_steps), r.recoveries, r.self_imitation, r.outcome)


async def pipeline_run(
    url: str, settings: Settings, episodes: int, steps: int, detectors: int = 0
) -> dict[str, Any]:
    """Run the demo mix; ``detectors`` > 0 runs that many detector processes, 0 runs the
    detector in this process."""
    redis = connect(url)
    specs = demo_specs(episodes, steps, "bench", seed=0)
    worker = Worker(redis, settings, name="bench-worker")
    procs: list[asyncio.subprocess.Process] = []
    detector = DetectorService(redis, settings, name="bench-detector")
    await detector.ensure_groups()
    dstop = asyncio.Event()
    dtask = None
    if detectors:
        procs = await start_detectors(url, settings, detectors, RUNAWAY_HEARTBEAT_S="0.2")
    else:
        dtask = asyncio.create_task(detector.run(dstop))
    await submit_jobs(redis, settings.keys, specs)
    detector_cpu0 = sum(cpu_seconds(p.pid) for p in procs)  # its start-up is not counted
    started, cpu0 = time.perf_counter(), time.process_time()
    results = await worker.run(asyncio.Event(), until_idle=True)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    detector_cpu = sum(cpu_seconds(p.pid) for p in procs) - detector_cpu0
    if dtask is not None:
        dstop.set()
        await dtask
    for p in procs:
        p.terminate()
    for p in procs:
        await p.wait()
    played = sum(r.steps for r in results)
    lags = sorted(lag for r in results for lag in r.lags_s)
    await redis.aclose()
    return {
        "steps": played,
        "wall_s": wall,
        "steps_per_s": played / wall,
        "cpu_us_per_step": cpu / played * 1e6,
        "detector_cpu_us_per_step": detector_cpu / played * 1e6,
        "flips": sum(r.flips for r in results),
        "recoveries": sum(r.recoveries for r in results),
        "lag_ms_p50": lags[len(lags) // 2] * 1000 if lags else 0.0,
        "results": {r.episode_id: outcome_key(r) for r in results},
    }


async def collect_step_entries(url: str, settings: Settings) -> list[tuple[str, dict]]:
    redis = aioredis.Redis.from_url(url)
    out = []
    for shard in range(settings.shards):
        stream = settings.keys.steps(shard)
        for _, fields in await redis.xrange(stream):
            if fields.get(b"k") == b"step":
                out.append((stream, fields))
    await redis.aclose()
    return out


async def raw_run(url: str, prefix: str, entries: list[tuple[str, dict]]) -> dict[str, Any]:
    """Plain redis-py: pipelined XADD of ``entries``, XREADGROUP + XACK them back."""
    writer = aioredis.Redis.from_url(url)
    reader = aioredis.Redis.from_url(url)
    streams = sorted({s for s, _ in entries})
    renamed = {s: f"{prefix}-raw:{s}" for s in streams}
    for s in renamed.values():
        await writer.xgroup_create(s, "raw", id="0", mkstream=True)
    total = len(entries)
    done = asyncio.Event()
    acked = 0

    async def write() -> None:
        for i in range(0, total, RAW_BATCH):
            pipe = writer.pipeline(transaction=False)
            for stream, fields in entries[i : i + RAW_BATCH]:
                pipe.xadd(renamed[stream], fields, maxlen=200_000, approximate=True)
            await pipe.execute()

    async def read() -> None:
        nonlocal acked
        ids = dict.fromkeys(renamed.values(), ">")
        while acked < total:
            reply = await reader.xreadgroup("raw", "c", ids, count=500, block=50)
            for stream, es in stream_entries(reply):
                if es:
                    await reader.xack(stream, "raw", *[i for i, _ in es])
                    acked += len(es)
        done.set()

    started, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(write(), read())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    for s in renamed.values():
        await writer.delete(s)
    await writer.aclose()
    await reader.aclose()
    return {
        "entries": total,
        "wall_s": wall,
        "entries_per_s": total / wall,
        "cpu_us_per_entry": cpu / total * 1e6,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_redis() as (url, prefix):
        base = Settings(redis_url=url, key_prefix=prefix)
        pipe = await pipeline_run(url, base, args.episodes, args.steps, detectors=1)
        entries = await collect_step_entries(url, base)
        raw = await raw_run(url, prefix, entries)
        single_settings = base.model_copy(update={"key_prefix": f"{prefix}-single"})
        single = await pipeline_run(url, single_settings, args.episodes, args.steps)
        reference = pipe["results"]
        out: dict[str, Any] = {
            "episodes": args.episodes,
            "steps": pipe["steps"],
            "shards": base.shards,
            "pipeline_steps_per_s": round(pipe["steps_per_s"], 1),
            "raw_entries_per_s": round(raw["entries_per_s"], 1),
            "ratio": round(pipe["steps_per_s"] / raw["entries_per_s"], 3),
            # process CPU per step: steadier than wall time on a shared machine
            "pipeline_worker_cpu_us_per_step": round(pipe["cpu_us_per_step"], 1),
            "pipeline_detector_cpu_us_per_step": round(pipe["detector_cpu_us_per_step"], 1),
            "raw_cpu_us_per_entry": round(raw["cpu_us_per_entry"], 1),
            "flips": pipe["flips"],
            "recoveries": pipe["recoveries"],
            "detection_lag_ms_p50": round(pipe["lag_ms_p50"], 2),
            "in_process_steps_per_s": round(single["steps_per_s"], 1),
            "in_process_ratio": round(single["steps_per_s"] / raw["entries_per_s"], 3),
            "in_process_cpu_us_per_step": round(single["cpu_us_per_step"], 1),
            "in_process_identical": single["results"] == reference,
        }
        for n in args.detectors:
            if n == 1:
                res = pipe
            else:
                settings = base.model_copy(update={"key_prefix": f"{prefix}-d{n}"})
                res = await pipeline_run(url, settings, args.episodes, args.steps, detectors=n)
            out[f"detectors_{n}_steps_per_s"] = round(res["steps_per_s"], 1)
            out[f"detectors_{n}_ratio"] = round(res["steps_per_s"] / raw["entries_per_s"], 3)
            out[f"detectors_{n}_worker_cpu_us_per_step"] = round(res["cpu_us_per_step"], 1)
            out[f"detectors_{n}_detector_cpu_us_per_step"] = round(
                res["detector_cpu_us_per_step"], 1
            )
            out[f"detectors_{n}_identical"] = res["results"] == reference
        return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument(
        "--detectors", default="", help="comma list of detector process counts, e.g. 1,2,4"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.detectors = [int(x) for x in args.detectors.split(",") if x]
    out = run(lambda: main(args))
    print_table(
        "pipeline vs raw Redis (same run, same server)",
        list(out.items()),
        out if args.json else None,
    )


if __name__ == "__main__":
    cli()
