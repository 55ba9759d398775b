"""The benchmark's original way of running against runaway-monitor's concurrent workers.

Both sides talk to the same local OpenAI-compatible model server (its own process),
which answers every chat completion after a fixed delay (``--delay-ms``, 100 ms) with a
deterministic answer computed from the request: the observation in the last user message
and the model name (``balanced`` plays near the reference policy, ``greedy`` feeds one
objective without bound, so some episodes flip). The answer never depends on the rest of
the history, so the context edits of a recovery do not change what the model says, and
the two sides must play the very same actions.

- sequential: one episode at a time, one model call at a time (``ModelLimits``
  concurrency 1), as the BioBlue benchmark runs; every step is scored in process by the
  same :class:`EpisodeScorer` the detectors use, re-armed after a runaway flip exactly as
  the detector does when the worker applies the recovery.
- concurrent: :func:`monitor.pipeline.run_episodes`: a worker (all episodes at once,
  ``RUNAWAY_CONCURRENCY`` default 200), an embedded Redis and a detector, with the default
  savepoint recovery. Actions and detections per step come from the episode logs.

The concurrent side runs with the default settings (``RUNAWAY_MODEL_CONCURRENCY`` unset:
the worker's concurrency bounds the calls in flight); ``--model-concurrency N`` adds a
run with a per-endpoint cap, to show what one costs. ``concurrent_cpu_ms_per_call`` is the
CPU of the concurrent side's process (worker, detector, model clients) per model call.

    python bench/vs_sequential.py [--episodes 100] [--steps 20] [--delay-ms 100]
                                  [--model-concurrency N] [--json]
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import print_table, run
from detectors.scoring import EpisodeScorer
from monitor.pipeline import run_episodes
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.events import StepEvent
from schemas.settings import Settings
from workers.agents.base import AgentContext
from workers.agents.models import create_model_agent
from workers.environments import create_environment
from workers.environments.base import InvalidAction
from workers.environments.catalog import ENVIRONMENT_NAMES, OBJECTIVES
from workers.mitigations import parse_mitigations
from workers.models.limits import ModelLimits
from workers.prompting import system_prompt

# ---------------------------------------------------------------- the model server

_TARGET = re.compile(r"Homeostatic target (\w+): (-?\d+)")
_ACTUAL = re.compile(r"Homeostatic actual (\w+): (-?\d+)")
_SINGLE_TARGET = re.compile(r"Homeostatic target: (-?\d+)")
_SINGLE_ACTUAL = re.compile(r"Homeostatic actual: (-?\d+)")
_HARVESTED = re.compile(r"Harvested so far for objective (\w+): (-?\d+)")
_STOCK = re.compile(r"Number of potatoes in the environment: (-?\d+)")
_MAX_TOTAL = re.compile(r"harvest up to (\d+) units")


def answer(body: dict[str, Any]) -> str:
    """The deterministic answer to one chat request: a function of the last observation
    (the last user message; a reminder in front of it is ignored) and the model name."""
    messages = body.get("messages") or []
    greedy = body.get("model") == "greedy"
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
    if m := _STOCK.search(last):  # sustainability: harvest the surplus; greedy takes it all
        stock = int(m.group(1))
        return str(stock if greedy else max(0, stock // 4))
    if m := _SINGLE_TARGET.search(last):  # homeostasis
        a = _SINGLE_ACTUAL.search(last)
        gap = int(m.group(1)) - int(a.group(1)) if a else 0
        return str(max(0, gap + (8 if greedy else 1)))
    targets = _TARGET.findall(last)
    if targets:  # multi-objective homeostasis: top each up; greedy overfeeds the first
        actual = dict(_ACTUAL.findall(last))
        amounts = []
        for i, (name, target) in enumerate(targets):
            gap = int(target) - int(actual.get(name, target))
            amounts.append(max(0, gap + (8 if greedy and i == 0 else 1)))
        return ", ".join(map(str, amounts))
    totals = _HARVESTED.findall(last)
    if totals:  # balancing: all to the lowest total; greedy: all to the first
        limit = int(m.group(1)) if (m := _MAX_TOTAL.search(system)) else 10
        low = 0 if greedy else min(range(len(totals)), key=lambda i: int(totals[i][1]))
        return ", ".join(str(limit if i == low else 0) for i in range(len(totals)))
    return "0"


def serve_model(delay_s: float) -> None:
    """Run the model server (aiohttp, uvloop) until killed; print its port first."""
    from aiohttp import web

    from monitor.runtime import loop_factory

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(delay_s)
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103},
            }
        )

    async def main() -> None:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory()) as r:
        r.run(main())


class ModelServer:
    """The model server in a process of its own, so it never competes with a side's loop."""

    def __init__(self, delay_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-model", str(delay_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# ---------------------------------------------------------------- the two sides


def bench_specs(episodes: int, steps: int, base_url: str) -> list[EpisodeSpec]:
    """All six environments in turn; every third episode's model is greedy."""
    specs = []
    for i in range(episodes):
        env = ENVIRONMENT_NAMES[i % len(ENVIRONMENT_NAMES)]
        model = "greedy" if i % 3 == 2 else "balanced"
        options = {
            "model": model,
            "base_url": base_url,
            "structured": "off",
            "price_per_mtok": (0.0, 0.0),
        }
        specs.append(
            EpisodeSpec(
                episode_id=f"vs-{i:04d}",
                environment=env,
                objectives=OBJECTIVES[env],
                seed=1 + i,
                steps=steps,
                agent=AgentSpec(kind="openai-compatible", options=options),
                labels={"model": model},
            )
        )
    return specs


Outcome = tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, str], ...]]  # actions, detections


async def sequential(specs: list[EpisodeSpec], settings: Settings) -> dict[str, Outcome]:
    """One episode at a time, one call at a time; scored in process after every step."""
    limits = ModelLimits(concurrency=1)
    out: dict[str, Outcome] = {}
    for spec in specs:
        env = create_environment(spec.environment or "", seed=spec.seed, **spec.env_options)
        agent = create_model_agent(spec.agent, settings, limits)  # type: ignore[arg-type]
        plan = parse_mitigations(spec.mitigation)
        messages: list[Any] = [{"role": "system", "content": system_prompt(env, spec, plan)}]
        scorer = EpisodeScorer(spec)
        actions: list[tuple[int, ...]] = []
        detections: list[tuple[int, str]] = []
        try:
            for step in range(1, spec.steps + 1):
                if env.done:
                    break
                observation = env.values()
                messages.append({"role": "user", "content": env.observation_text()})
                for _ in range(11):  # re-ask a rejected answer, as the runner does
                    reply = await agent.act(AgentContext(messages, step, env))
                    try:
                        action = env.parse_action(reply.text)
                        break
                    except InvalidAction:
                        continue
                else:
                    raise RuntimeError(f"{spec.episode_id}: no valid answer at step {step}")
                transition = env.step(action)
                messages.append({"role": "assistant", "content": reply.text})
                actions.append(tuple(action[n] for n in env.names))
                event = StepEvent(
                    episode_id=spec.episode_id,
                    step=step,
                    observation=observation,
                    action={k: float(v) for k, v in action.items()},
                    after=transition.after,
                    noise=transition.noise or None,
                    rewards=transition.rewards,
                    text=reply.text,
                )
                score = scorer.update(event)
                for d in score.detections:
                    detections.append((step, d.flag))
                    if d.flag == "runaway" and spec.detector.recover and step < spec.steps:
                        scorer.rearm()  # what the detector does on RecoveryApplied
        finally:
            await agent.aclose()
        out[spec.episode_id] = (tuple(actions), tuple(detections))
    return out


def read_logs(log_dir: Path, specs: list[EpisodeSpec]) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    for spec in specs:
        names = spec.objectives.names
        actions: list[tuple[int, ...]] = []
        detections: list[tuple[int, str]] = []
        path = log_dir / f"{spec.episode_id}.jsonl"
        for line in path.read_bytes().splitlines():
            ev = json.loads(line)
            if ev["kind"] == "step":
                actions.append(tuple(int(ev["action"][n]) for n in names))
            elif ev["kind"] == "verdict":
                detections.extend((ev["step"], flag) for flag in ev["detections"])
        out[spec.episode_id] = (tuple(actions), tuple(detections))
    return out


async def concurrent(
    specs: list[EpisodeSpec], settings: Settings
) -> tuple[dict[str, Outcome], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = await run_episodes(
            settings, specs, asyncio.Event(), run_id="vs", show_progress=False, log_dir=Path(tmp)
        )
        # the whole call (the embedded Redis start included); reading the logs back is not
        summary["call_s"] = time.perf_counter() - started
        summary["cpu_s"] = time.process_time() - cpu_started
        return read_logs(Path(tmp), specs), summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    server = ModelServer(args.delay_ms / 1000)
    try:
        settings = Settings(redis_url=None)  # the defaults, as a worker runs
        specs = bench_specs(args.episodes, args.steps, server.base_url)
        calls = args.episodes * args.steps
        conc, summary = await concurrent(specs, settings)
        cpu_s, total_s = summary["cpu_s"], summary["call_s"]
        conc_s = summary["wall_seconds"]  # jobs submitted to the last episode's end
        out: dict[str, Any] = {
            "episodes": args.episodes,
            "steps_each": args.steps,
            "model_delay_ms": args.delay_ms,
            "worker_concurrency": settings.concurrency,
            "model_concurrency": settings.model_concurrency or "none (worker's)",
            "concurrent_s": round(conc_s, 2),
            "concurrent_with_redis_start_s": round(total_s, 2),
            "concurrent_steps_per_s": round(calls / conc_s, 1),
            "concurrent_cpu_ms_per_call": round(cpu_s / calls * 1000, 2),
            "concurrent_detection_ms_p99": round(summary["detection_lag_ms_p99"], 2),
        }
        if args.model_concurrency:
            limited = settings.model_copy(update={"model_concurrency": args.model_concurrency})
            capped, capped_summary = await concurrent(specs, limited)
            out["capped_model_concurrency"] = args.model_concurrency
            out["concurrent_capped_s"] = round(capped_summary["wall_seconds"], 2)
            out["capped_identical"] = capped == conc
        started = time.perf_counter()
        seq = await sequential(specs, settings)
        seq_s = time.perf_counter() - started
        out["sequential_s"] = round(seq_s, 2)
        out["sequential_steps_per_s"] = round(calls / seq_s, 1)
        out["speedup"] = round(seq_s / conc_s, 1)
        out["speedup_with_redis_start"] = round(seq_s / total_s, 1)
        if args.model_concurrency:
            out["speedup_capped"] = round(seq_s / out["concurrent_capped_s"], 1)
        differ = [e for e in seq if seq[e] != conc.get(e)]
        out["episodes_flipped"] = sum(1 for _, d in seq.values() if d)
        out["detections"] = sum(len(d) for _, d in seq.values())
        out["recoveries"] = summary["recoveries"]
        out["identical"] = not differ and seq.keys() == conc.keys()
        if differ:
            out["differing_episodes"] = differ[:10]
        out["target_met"] = out["identical"] and out["speedup"] >= 50
        return out
    finally:
        server.close()


def cli() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-model":
        serve_model(float(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--delay-ms", type=float, default=100.0)
    p.add_argument(
        "--model-concurrency",
        type=int,
        default=None,
        help="also run the concurrent side with this many calls at once per endpoint",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = run(lambda: main(args))
    print_table(
        "sequential (BioBlue's way) vs concurrent workers, same model server",
        list(out.items()),
        out if args.json else None,
    )
    if not out["identical"]:
        sys.exit("per-episode results differ between the two ways")


if __name__ == "__main__":
    cli()
