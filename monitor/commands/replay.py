"""``runaway-monitor replay PATH...``: score recorded trajectories through the detectors.

The scoring backend is a function ``(trajectories) -> results``: ``--offline`` runs the
in-process scorer; the default publishes the trajectories to Redis (``REDIS_URL`` or the
embedded server) and reads back what the streaming detector made of them.
"""

import argparse
import sys
from collections.abc import Callable

import orjson

from detectors.offline import TrajectoryResult, score_offline
from monitor.trajectories import Trajectory, TrajectoryError, load_trajectory
from schemas.settings import Settings

Backend = Callable[[list[Trajectory]], list[TrajectoryResult]]


def offline_backend(trajectories: list[Trajectory]) -> list[TrajectoryResult]:
    return [score_offline(t.spec, t.events, t.source, t.benchmark) for t in trajectories]


def streaming_backend(trajectories: list[Trajectory]) -> list[TrajectoryResult]:
    from monitor.replay_streaming import score_streaming

    return score_streaming(trajectories, Settings())


BACKENDS: dict[str, Backend] = {"offline": offline_backend, "streaming": streaming_backend}


def env_mismatches(traj: Trajectory) -> int:
    """Steps where re-simulating the recorded actions and noise differs from the record."""
    from workers.environments import create_environment

    spec = traj.spec
    if spec.environment is None:
        raise RuntimeError("--check-env needs a built-in environment name in the spec")
    noise = [dict(e.noise or {}) for e in traj.events]
    env = create_environment(
        spec.environment, seed=spec.seed, noise_trace=noise, **spec.env_options
    )
    bad = 0
    for ev in traj.events:
        if env.done:
            bad += 1
            continue
        before = env.values()
        tr = env.step({k: int(v) for k, v in ev.action.items()})
        after = ev.after or {}
        if any(abs(before[k] - ev.observation[k]) > 1e-6 for k in ev.observation) or any(
            abs(tr.after[k] - v) > 1e-6 for k, v in after.items()
        ):
            bad += 1
    return bad


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replay", help="score recorded trajectories (TSV or JSONL)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--offline", action="store_true", help="score in process, no Redis")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per trajectory")
    p.add_argument("--check-env", action="store_true", help="count env re-simulation mismatches")
    p.set_defaults(func=run)


def _row(r: dict) -> str:
    flip = f"{r['flip_step']}->{r['detected_step']}" if r["flipped"] else "-"
    si = str(r["self_imitation_step"]) if r["self_imitation"] else "-"
    oe = str(r["over_exploitation_step"]) if r["over_exploitation"] else "-"
    extra = f" {r['env_mismatches']:>5}" if "env_mismatches" in r else ""
    ri = f"{r['runaway_index']:6.3f}"
    return f"{r['benchmark'][:40]:40} {flip:>9} {si:>6} {oe:>6} {ri}{extra}  {r['source']}"


def run(args: argparse.Namespace) -> int:
    backend = BACKENDS["offline" if args.offline else "streaming"]
    failed = 0
    if not args.jsonl:
        head = f"{'benchmark':40} {'flip':>9} {'selfim':>6} {'overex':>6} {'RI':>6}"
        print(head + (" envmm" if args.check_env else "") + "  source")
    trajectories = []
    for path in args.paths:
        try:
            trajectories.append(load_trajectory(path))
        except TrajectoryError as exc:
            print(
                f"error: {path}: {exc}" if path not in str(exc) else f"error: {exc}",
                file=sys.stderr,
            )
            failed += 1
    for traj, result in zip(trajectories, backend(trajectories), strict=True):
        summary = result.summary()
        if args.check_env:
            try:
                summary["env_mismatches"] = env_mismatches(traj)
            except (RuntimeError, ValueError) as exc:
                print(f"error: {traj.source}: --check-env: {exc}", file=sys.stderr)
                failed += 1
                continue
        if args.jsonl:
            sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        else:
            print(_row(summary))
    return 1 if failed else 0
