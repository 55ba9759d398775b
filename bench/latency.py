"""Detection latency: a step's publication to its verdict reaching the worker, p50/p99.

N concurrent episodes (1,000 and 10,000 by default) each play paced steps, as agents
waiting on a model do: every episode thinks ``think_s`` = N / rate seconds per step, so
the offered load is ``--rate`` steps/s whatever N. The worker runs in this process, the
detector in its own process (as deployed). Latency under saturation is just Little's law
(episodes x in-flight steps / throughput); this measures it at a load the pipeline can
carry.

The sidecar HTTP part (verdict latency at a steady 500 req/s) needs ``monitor/api``
(``runaway-monitor serve``); it is measured when that module is present.

    python bench/latency.py [--episodes 1000,10000] [--rate 1000] [--steps 8] [--json]
"""

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from typing import Any

try:
    from bench.common import ROOT, bench_redis, percentile, print_table, run
except ImportError:  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.common import ROOT, bench_redis, percentile, print_table, run

from monitor.connections import connect
from schemas.episode import EpisodeSpec
from schemas.settings import Settings
from workers.agents import create_agent
from workers.agents.base import AgentContext, Reply
from workers.environments.base import Environment
from workers.jobs import demo_specs, submit_jobs
from workers.worker import Worker


class PacedAgent:
    """Any agent, answering after ``think_s`` (a model's latency), started at a random phase."""

    def __init__(self, inner: Any, think_s: float, phase: float) -> None:
        self.inner, self.think_s, self.phase = inner, think_s, phase

    async def act(self, context: AgentContext) -> Reply:
        await asyncio.sleep(self.think_s * (self.phase if context.step == 1 else 1.0))
        return await self.inner.act(context)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def start_detector(url: str, settings: Settings) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "REDIS_URL": url,
        "RUNAWAY_KEY_PREFIX": settings.key_prefix,
        "RUNAWAY_SHARDS": str(settings.shards),
        "PYTHONPATH": str(ROOT),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "detector", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def detection(url: str, prefix: str, episodes: int, rate: float, steps: int) -> dict:
    settings = Settings(redis_url=url, key_prefix=f"{prefix}-{episodes}", concurrency=episodes)
    think_s = episodes / rate
    redis = connect(url, max_connections=128)
    counter = iter(range(10**9))

    def agent_factory(spec: EpisodeSpec, env: Environment) -> Any:
        inner = create_agent(spec.agent, seed=spec.seed)  # type: ignore[arg-type]
        return PacedAgent(inner, think_s, (next(counter) % 1000) / 1000)

    detector = await start_detector(url, settings)
    worker = Worker(redis, settings, name="lat-worker", agent_factory=agent_factory)
    await submit_jobs(redis, settings.keys, demo_specs(episodes, steps, "lat", seed=0))
    started = time.perf_counter()
    results = await worker.run(asyncio.Event(), until_idle=True)
    wall = time.perf_counter() - started
    detector.terminate()
    await detector.wait()
    await redis.aclose()
    lags = [lag * 1000 for r in results for lag in r.lags_s]
    return {
        f"e{episodes}_offered_steps_per_s": rate,
        f"e{episodes}_achieved_steps_per_s": round(len(lags) / wall, 1),
        f"e{episodes}_detection_ms_p50": round(percentile(lags, 50), 2),
        f"e{episodes}_detection_ms_p99": round(percentile(lags, 99), 2),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with bench_redis() as (url, prefix):
        for n in args.episodes:
            out |= await detection(url, prefix, n, args.rate, args.steps)
    if importlib.util.find_spec("monitor.api") is None:
        out["http_verdict"] = "not measured: the sidecar (monitor/api) is not on this branch"
    return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", default="1000,10000")
    p.add_argument("--rate", type=float, default=1000.0, help="offered steps/s in total")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.episodes = [int(x) for x in args.episodes.split(",") if x]
    out = run(lambda: main(args))
    print_table("detection latency", list(out.items()), out if args.json else None)


if __name__ == "__main__":
    cli()
