"""``runaway-monitor run``: episodes of one environment and agent through the full pipeline."""

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.cli_settings import settings_from
from monitor.pipeline import print_summary, run_episodes
from monitor.runtime import STOP_GRACE_S, run
from monitor.specs import episode_spec
from schemas.episode import AgentSpec, EpisodeSpec, VerdictPolicy
from workers.environments.catalog import ENVIRONMENT_NAMES
from workers.mitigations import parse_mitigations

AGENTS = ("reference", "drifting", "replay", "openai", "anthropic", "openai-compatible")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="run episodes of one environment and agent")
    p.add_argument("--env", required=True, choices=ENVIRONMENT_NAMES)
    p.add_argument("--agent", required=True, choices=AGENTS)
    p.add_argument("--model", help="model name (openai, anthropic, openai-compatible)")
    p.add_argument("--base-url", help="OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=1, help="seed of the first episode")
    p.add_argument("--mitigation", default="savepoint-recovery", help="names joined with +")
    p.add_argument(
        "--policy",
        default="",
        metavar="FLAG=ACTION,...",
        help="verdict policy over the worker default (RUNAWAY_WORKER_POLICY), e.g. "
        "self_imitation=continue,over_exploitation=reset",
    )
    p.add_argument("--flip-step", type=int, help="drifting agent: flip at this step")
    p.add_argument("--mode", help="drifting agent: runaway mode")
    p.add_argument("--source", help="replay agent: the recording to play")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option (repeatable), e.g. hint=false",
    )
    p.add_argument("--log-dir", type=Path, help="write one JSONL log per episode here")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=main)


def _agent_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.agent in ("openai", "anthropic", "openai-compatible"):
        if args.agent == "openai-compatible" and not args.base_url:
            raise ValueError("--agent openai-compatible needs --base-url")
        options: dict[str, Any] = {
            "model": args.model,
            "base_url": args.base_url,
            "temperature": args.temperature,
        }
    elif args.agent == "drifting":
        options = {"flip_step": args.flip_step, "mode": args.mode}
    elif args.agent == "replay":
        if not args.source:
            raise ValueError("--agent replay needs --source FILE.tsv")
        options = {"source": args.source}
    else:
        options = {}
    return {k: v for k, v in options.items() if v is not None}


def _env_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def build_specs(
    args: argparse.Namespace, run_id: str, base: VerdictPolicy | None = None
) -> list[EpisodeSpec]:
    parse_mitigations(args.mitigation)
    policy = (base or VerdictPolicy()).with_overrides(getattr(args, "policy", "") or "")
    agent = AgentSpec(kind=args.agent, options=_agent_options(args))
    labels = {"model": args.model or args.agent}
    return [
        episode_spec(
            f"{run_id}-{i:04d}",
            args.env,
            agent,
            seed=args.seed + i,
            steps=args.steps,
            mitigation=args.mitigation,
            env_options=_env_options(args.option),
            labels=labels,
            policy=policy,
        )
        for i in range(args.episodes)
    ]


def main(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.steps < 1:
        print("error: --episodes and --steps must be at least 1", file=sys.stderr)
        return 2
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    settings = settings_from()
    try:
        specs = build_specs(args, run_id, settings.worker_policy)
        from workers.environments import create_environment

        create_environment(args.env, **specs[0].env_options)  # options checked up front
    except (ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = run(
        lambda stop: run_episodes(
            settings, specs, stop, run_id=run_id, show_progress=not args.json, log_dir=args.log_dir
        ),
        grace_s=settings.shutdown_grace_s + STOP_GRACE_S,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["errors"] == 0 and not summary.get("interrupted") else 1
