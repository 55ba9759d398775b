"""``runaway-monitor plot PATH --out FILE.png``: one trajectory at a glance.

Top: levels/totals/stock per objective with targets and bands (or caps); middle: actions;
bottom: Runaway Index and hazard. Vertical lines mark the flip onset (red, dashed), its
detection (red, solid), self-imitation onset (purple, dotted) and recoveries (green).
"""

import argparse
import sys

from detectors.offline import score_offline
from monitor.trajectories import TrajectoryError, load_trajectory


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot", help="draw one trajectory with its detections")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--out", required=True, help="output PNG file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        traj = load_trajectory(args.path)
    except TrajectoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    res = score_offline(traj.spec, traj.events, traj.source, traj.benchmark)
    steps = [e.step for e in traj.events]
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.5, 1.5]}
    )
    for k, obj in enumerate(traj.spec.objectives.objectives):
        color = f"C{k}"
        vals = [(e.after or e.observation)[obj.name] for e in traj.events]
        ax1.plot(steps, vals, color=color, label=f"{obj.name} ({obj.kind.value})")
        if obj.target is not None:
            ax1.axhline(obj.target, color=color, lw=0.8, ls="--")
            if obj.band is not None:
                ax1.axhspan(obj.target - obj.band, obj.target + obj.band, color=color, alpha=0.1)
        if obj.capacity is not None:
            ax1.axhline(obj.capacity, color=color, lw=0.8, ls=":")
        ax2.step(
            steps,
            [e.action[obj.name] for e in traj.events],
            where="mid",
            color=color,
            label=obj.name,
        )
    ax3.plot(steps, [s.runaway_index for s in res.scores], color="k", label="Runaway Index")
    ax3.plot(steps, [s.hazard for s in res.scores], color="C3", alpha=0.6, label="hazard")
    ax3.set_ylim(-0.02, 1.02)
    for ax in (ax1, ax2, ax3):
        if res.flipped:
            ax.axvline(res.flip_step, color="red", ls="--", lw=1)
            ax.axvline(res.detected_step, color="red", lw=1)
        if res.self_imitation:
            ax.axvline(res.self_imitation_step, color="purple", ls=":", lw=1)
        for r in traj.recoveries:
            ax.axvline(r, color="green", lw=1)
    ax1.set_ylabel("level / total / stock")
    ax2.set_ylabel("action")
    ax3.set_ylabel("score")
    ax3.set_xlabel("step")
    ax1.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper left", fontsize=8)
    ax3.legend(loc="upper left", fontsize=8)
    flip = f"flip onset {res.flip_step}, detected {res.detected_step}" if res.flipped else "no flip"
    si = (
        f"self-imitation from {res.self_imitation_step}"
        if res.self_imitation
        else "no self-imitation"
    )
    ax1.set_title(f"{traj.benchmark}: {flip}; {si}; RI {res.runaway_index:.2f}", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=90)
    except OSError as exc:
        print(f"error: {args.out}: cannot write: {exc}", file=sys.stderr)
        return 1
    finally:
        plt.close(fig)
    return 0
