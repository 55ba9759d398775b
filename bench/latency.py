"""Detection latency: a step's publication to its verdict reaching the worker, p50/p99.

N concurrent episodes (1,000 and 10,000 by default) each play paced steps, as agents
waiting on a model do: each episode steps every ``think_s`` = N / rate seconds, at phases
spread evenly over the episodes, so the offered load is a steady ``--rate`` steps/s
whatever N. The worker runs in this process, the
detector in its own process (as deployed), started and holding its shards before the
first episode. Latency under saturation is just Little's law (episodes x in-flight steps
/ throughput); this measures it at a load the pipeline can carry. ``detection_ms_*`` is
the steady state: steps published after every episode had started (the worker starting
thousands of episodes at one instant is a burst); ``with_ramp_ms_*`` counts every step.

HTTP verdict latency: ``runaway-monitor serve`` in its own process and a detector in
another (as deployed; ``--http-detector in-process`` runs ``serve --with-detector``
instead), on the same Redis, and an open-loop load from this process: ``--http-episodes``
registered episodes each post their steps in order, paced so the service gets
``--http-rate`` requests/s in total for ``--http-seconds``. A request is sent at its
scheduled time unless its episode still waits for the previous verdict (the steps of
one episode are ordered); latency is counted from the scheduled time, so a slow service
cannot hide its queueing (no coordinated omission).

    python bench/latency.py [--episodes 1000,10000] [--rate 1000] [--steps 8]
                            [--http-rate 500] [--http-seconds 10]
                            [--http-detector process|in-process] [--json]
"""

import argparse
import asyncio
import os
import socket
import sys
import time
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    ROOT,
    bench_redis,
    cpu_seconds,
    percentile,
    print_table,
    run,
    start_detectors,
)
from schemas.episode import EpisodeSpec
from schemas.redis_io import connect
from schemas.settings import Settings
from workers.agents import create_agent
from workers.agents.base import AgentContext, Reply
from workers.environments.base import Environment
from workers.jobs import demo_specs, submit_jobs
from workers.worker import Worker


class PacedAgent:
    """Any agent, answering on a schedule, as agents waiting on a model do.

    Step ``k`` is due at ``t0 + (phase + k - 1) * think_s`` (loop time): with phases
    spread evenly over the episodes, the load is a steady ``episodes / think_s`` steps/s
    whenever each episode started. A step already late is answered at once. ``answered``
    gets the time of each answer: the step is published right after it.
    """

    def __init__(
        self, inner: Any, think_s: float, t0: float, phase: float, answered: list[float]
    ) -> None:
        self.inner, self.think_s, self.t0, self.phase = inner, think_s, t0, phase
        self.answered = answered

    async def act(self, context: AgentContext) -> Reply:
        loop = asyncio.get_running_loop()
        due = self.t0 + (self.phase + context.step - 1) * self.think_s
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        reply = await self.inner.act(context)
        self.answered.append(time.time())
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


async def detection(url: str, prefix: str, episodes: int, rate: float, steps: int) -> dict:
    settings = Settings(redis_url=url, key_prefix=f"{prefix}-{episodes}", concurrency=episodes)
    think_s = episodes / rate
    redis = connect(url, max_connections=128)
    counter = iter(range(10**9))
    answered: dict[str, list[float]] = {}
    t0 = 0.0

    def agent_factory(spec: EpisodeSpec, env: Environment) -> Any:
        inner = create_agent(spec.agent, seed=spec.seed)  # type: ignore[arg-type]
        times = answered[spec.episode_id] = []
        return PacedAgent(inner, think_s, t0, next(counter) / episodes, times)

    (detector,) = await start_detectors(url, settings)
    worker = Worker(redis, settings, name="lat-worker", agent_factory=agent_factory)
    await submit_jobs(redis, settings.keys, demo_specs(episodes, steps, "lat", seed=0))
    t0 = asyncio.get_running_loop().time() + 1.0  # the first steps once episodes are up
    started, cpu0, detector_cpu0 = (
        time.perf_counter(),
        time.process_time(),
        cpu_seconds(detector.pid),
    )
    results = await worker.run(asyncio.Event(), until_idle=True)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    detector_cpu = cpu_seconds(detector.pid) - detector_cpu0
    detector.terminate()
    await detector.wait()
    await redis.aclose()
    # steady state: steps published once every episode was running (the start of
    # thousands of episodes at one instant is a burst no deployment sees twice)
    ramp_end = max(times[0] for times in answered.values() if times)
    lags, steady = [], []
    for r in results:
        for lag, at in zip(r.lags_s, answered[r.episode_id], strict=False):
            lags.append(lag * 1000)
            if at > ramp_end:
                steady.append(lag * 1000)
    # over the span of the answers (the wall time also holds the 1 s lead-in before t0)
    stamps = [t for times in answered.values() for t in times]
    span = max(stamps) - min(stamps) if len(stamps) > 1 else wall
    return {
        f"e{episodes}_offered_steps_per_s": rate,
        f"e{episodes}_achieved_steps_per_s": round(len(stamps) / span, 1),
        f"e{episodes}_detection_ms_p50": round(percentile(steady, 50), 2),
        f"e{episodes}_detection_ms_p99": round(percentile(steady, 99), 2),
        f"e{episodes}_steady_steps": len(steady),
        f"e{episodes}_with_ramp_ms_p50": round(percentile(lags, 50), 2),
        f"e{episodes}_with_ramp_ms_p99": round(percentile(lags, 99), 2),
        # CPU per step: this process (the worker, its episodes' start and the pacing
        # included) and the detector process
        f"e{episodes}_worker_cpu_us_per_step": round(cpu / max(1, len(stamps)) * 1e6, 1),
        f"e{episodes}_detector_cpu_us_per_step": round(detector_cpu / max(1, len(stamps)) * 1e6, 1),
    }


async def start_sidecar(
    url: str, prefix: str, with_detector: bool
) -> tuple[asyncio.subprocess.Process, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "REDIS_URL": url,
        "RUNAWAY_KEY_PREFIX": f"{prefix}-http",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("RUNAWAY_API_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "serve",
        "--port",
        str(port),
        *(["--with-detector"] if with_detector else []),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


async def http_verdicts(
    url: str, prefix: str, rate: float, seconds: float, episodes: int, detector_mode: str
) -> dict:
    import aiohttp

    in_process = detector_mode == "in-process"
    proc, base = await start_sidecar(url, prefix, with_detector=in_process)
    detector = None
    if not in_process:
        (detector,) = await start_detectors(
            url, Settings(redis_url=url, key_prefix=f"{prefix}-http")
        )
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(base, connector=connector)
    try:
        for _ in range(200):
            try:
                async with session.get("/readyz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        ids = []
        for _ in range(episodes):
            async with session.post("/v1/episodes", json={"environment": "homeostasis"}) as r:
                ids.append((await r.json())["episode_id"])
        period = episodes / rate  # each episode posts one step per period
        steps = max(1, int(seconds / period))
        lat: list[float] = []
        statuses: dict[int, int] = {}
        fail_mode = 0
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.5

        async def episode(i: int, episode_id: str) -> None:
            nonlocal fail_mode
            level = 100.0
            for step in range(1, steps + 1):
                due = t0 + (i / episodes + step - 1) * period
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = {"step": step, "observation": {"level": level}, "action": {"level": 1}}
                async with session.post(f"/v1/episodes/{episode_id}/steps", json=body) as r:
                    payload = await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                lat.append((loop.time() - due) * 1000)
                if b'"fail_mode":null' not in payload.replace(b" ", b""):
                    fail_mode += 1

        pids = {"serve": proc.pid, "detector": detector.pid if detector else None, "load": None}
        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items() if k == "load" or pid}
        started = loop.time()
        await asyncio.gather(*(episode(i, e) for i, e in enumerate(ids)))
        wall = loop.time() - started - 0.5
        cpu = {k: cpu_seconds(pids[k]) - v for k, v in cpu0.items()}
    finally:
        await session.close()
        for p in (proc, detector):
            if p is not None:
                p.terminate()
                await p.wait()
    return {
        "http_offered_req_per_s": rate,
        "http_achieved_req_per_s": round(len(lat) / wall, 1),
        "http_requests": len(lat),
        "http_episodes": episodes,
        "http_detector": detector_mode,
        "http_statuses": ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        "http_fail_mode_answers": fail_mode,
        "http_verdict_ms_p50": round(percentile(lat, 50), 2),
        "http_verdict_ms_p99": round(percentile(lat, 99), 2),
        # CPU per request of each process: steadier than latency on a shared machine
        **{f"http_{k}_cpu_ms_per_req": round(v / len(lat) * 1000, 3) for k, v in cpu.items()},
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with bench_redis() as (url, prefix):
        for n in args.episodes:
            out |= await detection(url, prefix, n, args.rate, args.steps)
        if args.http_rate > 0:
            out |= await http_verdicts(
                url,
                prefix,
                args.http_rate,
                args.http_seconds,
                args.http_episodes,
                args.http_detector,
            )
    return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", default="1000,10000")
    p.add_argument("--rate", type=float, default=1000.0, help="offered steps/s in total")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--http-rate", type=float, default=500.0, help="requests/s; 0: skip HTTP")
    p.add_argument("--http-seconds", type=float, default=10.0)
    p.add_argument("--http-episodes", type=int, default=500)
    p.add_argument("--http-detector", choices=("process", "in-process"), default="process")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.episodes = [int(x) for x in args.episodes.split(",") if x]
    out = run(lambda: main(args))
    print_table("detection latency", list(out.items()), out if args.json else None)


if __name__ == "__main__":
    cli()
