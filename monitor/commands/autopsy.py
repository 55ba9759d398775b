"""``runaway-monitor autopsy EPISODE``: why did this episode's model flip?

``EPISODE`` is a log file, or a results directory followed by an episode id. The model
is the one recorded in the episode spec unless ``--agent/--model/--base-url`` say
otherwise. The autopsy goes to ``RESULTS/autopsies/<id>.json`` (or ``--out``) and a
readable summary is printed. See :mod:`monitor.analysis.autopsy`.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from monitor.analysis.agent_options import add_agent_flags, agent_spec
from monitor.analysis.autopsy import Asker, AutopsyOptions, NotFlipped, run_autopsy
from monitor.analysis.probes import load_battery
from monitor.analysis.rebuild import RebuildError, load_episode_log
from monitor.analysis.results import ResultsError, autopsy_path, resolve_log
from monitor.runtime import run
from schemas.episode import AgentSpec
from schemas.settings import Settings
from workers.models.kinds import MODEL_KINDS, ModelConfigError
from workers.models.limits import ModelLimits


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("autopsy", help="rank the messages that made a model flip; probe it")
    p.add_argument("target", type=Path, metavar="LOG|RESULTS", help="episode log or results dir")
    p.add_argument("episode", nargs="?", help="episode id (with a results directory)")
    add_agent_flags(p, required=False)
    p.add_argument("--last", type=int, default=10, help="messages before the flip to test")
    p.add_argument("--samples", type=int, default=1, help="answers per ablation")
    p.add_argument(
        "--shapley",
        type=int,
        default=0,
        metavar="K",
        help="also sampled Shapley values over K permutations",
    )
    p.add_argument("--flip-step", type=int, help="autopsy this step instead of the onset")
    p.add_argument("--pre-gap", type=int, default=5, help="pre-flip probe step: onset - GAP")
    p.add_argument("--battery", type=Path, help="probe battery file (YAML or JSON)")
    p.add_argument("--no-probes", action="store_true", help="skip the probe battery")
    p.add_argument("--probe-max-tokens", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="Shapley permutation seed")
    p.add_argument(
        "--patch-top",
        type=int,
        default=0,
        metavar="N",
        help="prompt patch: reformulate the N most influential messages and "
        "replay from the onset (see monitor.analysis.patches)",
    )
    p.add_argument("--patch-horizon", type=int, default=10, help="prompt patch: steps replayed")
    p.add_argument("--out", type=Path, help="write the autopsy JSON here")
    p.add_argument("--json", action="store_true", help="print the autopsy JSON, not a summary")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        log_path, results = resolve_log(args.target, args.episode)
        episode = load_episode_log(log_path)
        spec = agent_spec(args, episode.spec.agent)
        if spec.kind not in MODEL_KINDS:
            raise ValueError(
                f"autopsy re-asks a model; the episode's agent is {spec.kind!r}: pass "
                "--agent openai-compatible --model M --base-url URL (or openai, anthropic)"
            )
        battery = load_battery(args.battery) if args.battery else None
    except (ResultsError, RebuildError, ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = AutopsyOptions(
        last_n=args.last,
        samples=max(1, args.samples),
        shapley=max(0, args.shapley),
        pre_gap=max(1, args.pre_gap),
        flip_step=args.flip_step,
        probes=not args.no_probes,
        battery=battery,
        concurrency=max(1, args.concurrency),
        seed=args.seed,
    )
    try:
        patch = (max(0, args.patch_top), max(1, args.patch_horizon))
        autopsy = run(lambda stop: _autopsy(episode, spec, options, args.probe_max_tokens, patch))
    except (NotFlipped, RebuildError, ModelConfigError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or (
        autopsy_path(results, episode.spec.episode_id)
        if results is not None
        else log_path.with_suffix(".autopsy.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(autopsy, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(autopsy).decode())
    else:
        print(summary_text(autopsy))
        print(f"\nwritten to {out}")
    return 0


async def _autopsy(
    episode: Any,
    spec: AgentSpec,
    options: AutopsyOptions,
    probe_tokens: int,
    patch: tuple[int, int] = (0, 10),
):
    from workers.agents.models import create_model_agent  # the SDKs load only when needed

    settings = Settings()
    limits = ModelLimits.from_settings(settings)
    probe_spec = AgentSpec(
        kind=spec.kind, options={**spec.options, "structured": "off", "max_tokens": probe_tokens}
    )
    action_agent = create_model_agent(spec, settings, limits)
    text_agent = create_model_agent(probe_spec, settings, limits)
    try:
        asker = Asker(action_agent, text_agent, options.reasks)
        autopsy = await run_autopsy(episode, asker, options)
        if patch[0]:
            from monitor.analysis.patches import rerun_patched

            autopsy["prompt_patch"] = await rerun_patched(episode, autopsy, asker, *patch)
        return autopsy
    finally:
        await action_agent.aclose()
        await text_agent.aclose()


def _fmt(action: Any) -> str:
    if action is None:
        return "invalid"
    return "(" + ", ".join(f"{k}={v}" for k, v in action.items()) + ")"


def summary_text(autopsy: dict[str, Any]) -> str:
    """A readable summary: the flip, the most influential messages, the probe changes."""
    flip = autopsy["flip"]
    loo = autopsy["leave_one_out"]
    lines = [
        f"autopsy of {autopsy['episode_id']} ({autopsy['environment']}, seed {autopsy['seed']}, "
        f"mitigation {autopsy['mitigation']})",
        f"flip: onset step {flip['onset_step']}, detected {flip['detected_step']}, "
        f"mode {flip['mode']}; action {_fmt(flip['action'])}, reference "
        f"{_fmt(flip['reference_action'])}",
        f"re-simulation mismatches: {len(autopsy['rebuild']['mismatched_steps'])}; "
        f"model calls: {autopsy['calls']}",
        f"baseline (full context) answers: {', '.join(_fmt(a) for a in loo['baseline_actions'])}",
        "",
        f"leave-one-out over the last {loo['last_n']} messages (most influential first):",
        f"{'rank':>4} {'pos':>4} {'step':>4} {'role':9} {'infl':>6} {'chg':>4} "
        f"{'shap':>6}  kinds / answer without it",
    ]
    for row in loo["messages"]:
        shap = f"{row['shapley']:6.2f}" if row["shapley"] is not None else "     -"
        answers = ", ".join(_fmt(a) for a in row["actions"])
        lines.append(
            f"{row['rank']:>4} {row['position']:>4} {row['step']:>4} {row['role']:9} "
            f"{row['influence']:6.1f} {row['changed']:4.0%} {shap}  "
            f"{','.join(row['kinds'])} -> {answers}"
        )
    patch = autopsy.get("prompt_patch")
    if patch:
        lines += [
            "",
            f"prompt patch (top {patch['top']} reformulated, {patch['replayed_steps']} "
            f"steps replayed from {patch['onset_step']}): flipped before yes, after "
            f"{'yes' if patch['flipped_after'] else 'no'}",
        ]
    probes = autopsy.get("probes")
    if probes:
        lines += [
            "",
            f"probes ({probes['battery']}): pre-flip step {probes['pre_step']} vs "
            f"flip step {probes['post_step']}",
        ]
        for item in probes["items"]:
            post = item["post"]
            pre = item["pre"] or {}
            if post["score"] is not None or pre.get("score") is not None:
                detail = f"score {pre.get('score')} -> {post['score']}"
            else:
                detail = f"mentions {pre.get('mentions')} -> {post['mentions']}"
            lines.append(f"  {item['id']:20} {detail}   post: {_short(post['answer'])}")
    return "\n".join(lines)


def _short(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
