"""Inspect AI running the plugin's task vs runaway-monitor's own ``run``, same model server.

100 episodes x 20 steps of multiobjective-homeostasis (seeds 1..100) against one local
OpenAI-compatible server (its own process, ``bench/vs_sequential.py``'s) that answers
after a fixed delay (``--delay-ms``, 100 ms) with a deterministic function of the
observation, so every way of running plays the very same actions; the bench checks it.

- (a) ``inspect``: ``inspect_ai.eval`` of ``runaway_monitor/multiobjective_homeostasis``
  with the monitor off, at each ``--max-connections`` value (``max_samples`` the same);
  the best is (a);
- (b) ``inspect_monitored``: the same at (a)'s best value with the hooks on
  (``RUNAWAY_INSPECT_HOOKS=1``) and the recovery wrapper on (``-T monitor=true``: each
  step waits for its verdict, up to 30 s), against an embedded Redis and a ``runaway-monitor
  detector`` process;
- (c) ``runaway``: :func:`monitor.pipeline.run_episodes` (worker + detector + embedded
  Redis, savepoint recovery) at the default concurrency.

Each side runs in a fresh process; its steps/s is the steps over the wall time of the
call that runs the episodes (Inspect's ``eval``; ``run_episodes`` with its Redis start).
``runaway_vs_inspect`` = c / a; ``hooks_overhead`` = 1 - b / a.

    python bench/vs_inspect.py [--episodes 100] [--steps 20] [--delay-ms 100]
                               [--max-connections 25,50,100,200] [--json]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, print_table
from bench.vs_sequential import ModelServer

ENV = "multiobjective-homeostasis"
MODEL = "balanced"
Actions = dict[str, list[list[int]]]  # "seed-<k>" -> actions per step


def _side_inspect(args: argparse.Namespace) -> dict[str, Any]:
    """One Inspect eval in this process (the environment says whether hooks are on)."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.log import read_eval_log

    from monitor.integrations.inspect.bioblue import STORE_KEY
    from monitor.integrations.inspect.recovery import LINK_KEY
    from monitor.integrations.inspect.tasks import bioblue_task

    task = bioblue_task(ENV, steps=args.steps, trials=args.episodes, monitor=args.monitor)
    with tempfile.TemporaryDirectory() as logs:
        started = time.perf_counter()
        (log,) = inspect_eval(
            task,
            model=f"openai-api/bench/{MODEL}",
            model_base_url=args.base_url,
            max_connections=args.max_connections,
            max_samples=args.max_connections,
            log_dir=logs,
            display="none",
            fail_on_error=True,
            # a failing model server ends the eval with its error; Inspect's default
            # retries a failed call with backoff for many minutes
            max_retries=2,
            timeout=60,
        )
        wall = time.perf_counter() - started
        log = read_eval_log(log.location)
    if log.status != "success":
        raise SystemExit(f"the eval did not succeed: {log.error}")
    actions: Actions = {}
    outages = 0
    for sample in log.samples or []:
        records = sample.store.get(STORE_KEY, [])
        actions[str(sample.id)] = [[int(r["action"][n]) for n in ("A", "B")] for r in records]
        link = sample.store.get(LINK_KEY) or {}
        outages += int(link.get("monitor_outages", 0)) + int(link.get("verdict_timeouts", 0))
    return {"wall_s": wall, "actions": actions, "monitor_problems": outages}


def _side_runaway(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import run
    from monitor.pipeline import run_episodes
    from schemas.episode import AgentSpec, EpisodeSpec
    from schemas.settings import Settings
    from workers.environments.catalog import OBJECTIVES

    options = {
        "model": MODEL,
        "base_url": args.base_url,
        "structured": "off",
        "price_per_mtok": (0.0, 0.0),
    }
    specs = [
        EpisodeSpec(
            episode_id=f"vsi-{i:04d}",
            environment=ENV,
            objectives=OBJECTIVES[ENV],
            seed=1 + i,
            steps=args.steps,
            labels={"model": MODEL},
            agent=AgentSpec(kind="openai-compatible", options=options),
        )
        for i in range(args.episodes)
    ]
    settings = Settings(redis_url=None)

    async def main(log_dir: Path) -> float:
        started = time.perf_counter()
        summary = await run_episodes(
            settings, specs, asyncio.Event(), run_id="vsi", show_progress=False, log_dir=log_dir
        )
        if summary["errors"]:
            raise SystemExit(f"runaway-monitor's run had errors: {summary['errors']}")
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        wall = run(lambda: main(Path(tmp)))
        actions: Actions = {}
        for spec in specs:
            lines = (Path(tmp) / f"{spec.episode_id}.jsonl").read_bytes().splitlines()
            events = [json.loads(line) for line in lines]
            actions[f"seed-{spec.seed}"] = [
                [int(e["action"][n]) for n in ("A", "B")] for e in events if e["kind"] == "step"
            ]
    return {"wall_s": wall, "actions": actions, "concurrency": settings.concurrency}


def _spawn(side: str, args: argparse.Namespace, extra: list[str], env: dict[str, str]) -> dict:
    """Run one side in a fresh process; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--side",
            side,
            "--out",
            out.name,
            "--episodes",
            str(args.episodes),
            "--steps",
            str(args.steps),
            "--base-url",
            args.base_url,
            *extra,
        ]
        environ = {
            **os.environ,
            "INSPECT_DISPLAY": "none",
            "PYTHONPATH": str(ROOT),
            "BENCH_API_KEY": "bench",
            **env,
        }
        started = time.perf_counter()
        print(f"[vs_inspect] {side} {' '.join(extra)}: started", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, env=environ, cwd=ROOT, timeout=1800, stdout=sys.stderr)
        took = time.perf_counter() - started
        print(f"[vs_inspect] {side}: done in {took:.1f} s", file=sys.stderr, flush=True)
        return json.loads(Path(out.name).read_text())


async def _detector(url: str, prefix: str) -> Any:
    from bench.common import start_detectors
    from schemas.settings import Settings

    return (await start_detectors(url, Settings(redis_url=url, key_prefix=prefix)))[0]


def _monitored(args: argparse.Namespace, connections: int) -> dict[str, Any]:
    """(b): an embedded Redis and a detector process for the run with hooks and wrapper."""
    from bench.common import bench_redis

    async def main() -> dict[str, Any]:
        async with bench_redis() as (url, prefix):
            detector = await _detector(url, prefix)
            try:
                # every verdict waited for, as a worker does (not the sidecar's 2 s)
                env = {
                    "REDIS_URL": url,
                    "RUNAWAY_KEY_PREFIX": prefix,
                    "RUNAWAY_INSPECT_HOOKS": "1",
                    "RUNAWAY_STEP_TIMEOUT_S": "30",
                }
                extra = ["--max-connections", str(connections), "--monitor"]
                return await asyncio.to_thread(_spawn, "inspect", args, extra, env)
            finally:
                detector.terminate()
                await detector.wait()

    return asyncio.run(main())


def compare(args: argparse.Namespace) -> dict[str, Any]:
    server = ModelServer(args.delay_ms / 1000)
    args.base_url = server.base_url
    calls = args.episodes * args.steps
    no_hooks = {"RUNAWAY_INSPECT_HOOKS": "0"}
    try:
        tuned: dict[int, dict[str, Any]] = {}
        for n in [int(x) for x in args.max_connections.split(",")]:
            tuned[n] = _spawn("inspect", args, ["--max-connections", str(n)], no_hooks)
        best = min(tuned, key=lambda n: tuned[n]["wall_s"])
        a = tuned[best]
        b = _monitored(args, best)
        c = _spawn("runaway", args, [], {})
    finally:
        server.close()
    rate = {k: calls / v["wall_s"] for k, v in (("a", a), ("b", b), ("c", c))}
    out: dict[str, Any] = {
        "episodes": args.episodes,
        "steps_each": args.steps,
        "model_delay_ms": args.delay_ms,
        **{f"inspect_steps_per_s_at_{n}": round(calls / r["wall_s"], 1) for n, r in tuned.items()},
        "inspect_best_max_connections": best,
        "inspect_steps_per_s": round(rate["a"], 1),
        "inspect_monitored_steps_per_s": round(rate["b"], 1),
        "runaway_steps_per_s": round(rate["c"], 1),
        "runaway_concurrency": c["concurrency"],
        "runaway_vs_inspect": round(rate["c"] / rate["a"], 3),
        "hooks_overhead": round(1 - rate["b"] / rate["a"], 3),
        "monitored_verdict_problems": b["monitor_problems"],
        "identical_actions": a["actions"] == c["actions"] and len(a["actions"]) == args.episodes,
        "monitored_identical_actions": b["actions"] == a["actions"],
    }
    out["targets_met"] = (
        out["identical_actions"]
        and out["runaway_vs_inspect"] >= 1.0
        and out["hooks_overhead"] <= 0.05
    )
    return out


def cli() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-model":
        from bench.vs_sequential import serve_model

        serve_model(float(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--delay-ms", type=float, default=100.0)
    p.add_argument(
        "--max-connections",
        default="25,50,100,200",
        help="Inspect's max_connections values to try (comma-separated)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--side", choices=("inspect", "runaway"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--monitor", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        if args.side == "inspect":
            args.max_connections = int(args.max_connections)
        result = _side_inspect(args) if args.side == "inspect" else _side_runaway(args)
        Path(args.out).write_text(json.dumps(result))
        return
    out = compare(args)
    print_table(
        "Inspect AI vs runaway-monitor's run, same model server",
        list(out.items()),
        out if args.json else None,
    )
    if not out["identical_actions"]:
        sys.exit("per-episode actions differ between Inspect and runaway-monitor's run")


if __name__ == "__main__":
    cli()
