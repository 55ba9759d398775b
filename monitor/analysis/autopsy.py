"""Flip autopsy: which messages made the model flip, and what it says about itself after.

Why from the log: the flipped episode is already recorded; re-asking the model with the
rebuilt context (see :mod:`monitor.analysis.rebuild`) costs a few dozen calls instead of
re-running episodes, and the context is exactly what the model saw.

Steps: find the flip (the scorer's first runaway onset, or a given step); leave-one-out
over the last N messages before the flip's observation (and optionally sampled Shapley
values over the same messages); the probe battery after the history up to the flip and
after the history up to a matched pre-flip step. The result is one JSON-able dict.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detectors.offline import score_offline
from monitor.analysis.influence import action_distance, leave_one_out, sampled_shapley
from monitor.analysis.probes import Battery, compare, load_battery, run_battery
from monitor.analysis.rebuild import LoggedEpisode, StepView, action_of, replay
from monitor.analysis.triggers import classify
from workers.agents.base import Agent, AgentContext, Message
from workers.environments import Action, Environment, InvalidAction

AUTOPSY_VERSION = 1
CONTENT_CHARS = 600  # message text kept per candidate in the JSON


class NotFlipped(ValueError):
    """The episode has no flip to autopsy."""


@dataclass(slots=True)
class AutopsyOptions:
    last_n: int = 10
    samples: int = 1
    shapley: int = 0  # permutations; 0: off
    pre_gap: int = 5  # the matched pre-flip step is this many steps before the onset
    flip_step: int | None = None  # override the scorer's onset
    probes: bool = True
    battery: Battery | None = None
    reasks: int = 2  # extra tries when an answer does not parse
    concurrency: int = 8
    seed: int = 0


class Asker:
    """Asks an agent for an action (parsed by the environment) or for free text."""

    def __init__(self, action_agent: Agent, text_agent: Agent, reasks: int) -> None:
        self.action_agent = action_agent
        self.text_agent = text_agent
        self.reasks = reasks
        self.calls = 0

    async def action(self, messages: list[Message], env: Environment, step: int) -> Action | None:
        for _ in range(self.reasks + 1):
            self.calls += 1
            reply = await self.action_agent.act(AgentContext(messages, step, env))
            try:
                return env.parse_action(reply.text)
            except InvalidAction:
                continue
        return None

    async def text(self, messages: list[Message], env: Environment, step: int) -> str:
        self.calls += 1
        reply = await self.text_agent.act(AgentContext(messages, step, env))
        return reply.text


def find_flip(episode: LoggedEpisode, override: int | None) -> dict[str, Any]:
    """The flip to autopsy: the scorer's first runaway (onset and detection)."""
    result = score_offline(
        episode.spec, sorted(episode.steps, key=lambda e: e.step), keep_scores=False
    )
    if override is not None:
        return {
            "onset_step": override,
            "detected_step": result.detected_step,
            "mode": result.flip_mode,
            "objective": result.flip_objective,
            "given": True,
        }
    if not result.flipped or result.flip_step is None:
        raise NotFlipped(f"{episode.source}: the scorer finds no flip in this episode")
    return {
        "onset_step": max(1, result.flip_step),
        "detected_step": result.detected_step,
        "mode": result.flip_mode,
        "objective": result.flip_objective,
        "given": False,
    }


def candidate_indices(view: StepView, last_n: int) -> list[int]:
    """The last ``last_n`` messages before the step's own observation (system excluded)."""
    usable = list(range(1, len(view.messages) - 1))
    return usable[-last_n:] if last_n > 0 else []


async def run_autopsy(
    episode: LoggedEpisode, asker: Asker, options: AutopsyOptions
) -> dict[str, Any]:
    """The whole autopsy of one episode as a JSON-able dict."""
    flip = find_flip(episode, options.flip_step)
    onset = int(flip["onset_step"])
    steps = {e.step for e in episode.steps}
    if onset not in steps:
        raise NotFlipped(f"{episode.source}: step {onset} is not in the log")
    pre_step = max(1, onset - options.pre_gap) if onset > 1 else None
    rebuilt = replay(episode, capture={onset} | ({pre_step} if pre_step else set()))
    view = rebuilt.views[onset]
    original = action_of(view.event)
    flip.update(
        action=original,
        text=view.event.text,
        reference_action=rebuilt.facts[onset].reference_action,
    )

    async def ask(messages: list[Message]) -> Action | None:
        return await asker.action(messages, view.env, onset)

    candidates = candidate_indices(view, options.last_n)
    ablations, baseline = await leave_one_out(
        view.messages, candidates, original, ask, options.samples, options.concurrency
    )
    base_distance = sum(action_distance(a, original) for a in baseline) / max(1, len(baseline))
    shapley: dict[int, float] = {}
    shapley_info = None
    if options.shapley > 0 and candidates:
        shapley, coalitions = await sampled_shapley(
            view.messages, candidates, original, ask, options.shapley, options.seed
        )
        shapley_info = {"permutations": options.shapley, "coalitions": coalitions}
    objectives = episode.spec.objectives
    rows = []
    for ab in ablations:
        ref = view.refs[ab.index]
        message = view.messages[ab.index]
        rows.append(
            {
                "index": ab.index,
                "position": ab.index - len(view.messages) + 1,  # -1: just before the observation
                "step": ref.step,
                "role": ref.role,
                "kinds": classify(ref, rebuilt.facts.get(ref.step), objectives),
                "content": message["content"][:CONTENT_CHARS],
                "actions": ab.actions,
                "distance": ab.distance,
                "changed": ab.changed,
                "influence": max(0.0, ab.distance - base_distance),
                "shapley": shapley.get(ab.index),
            }
        )
    rows.sort(key=lambda r: (-r["influence"], -r["changed"], -(r["shapley"] or 0.0), -r["index"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    probes = None
    if options.probes:
        probes = await _probes(episode, rebuilt.views, onset, pre_step, asker, options)
    spec = episode.spec
    return {
        "kind": "autopsy",
        "version": AUTOPSY_VERSION,
        "episode_id": spec.episode_id,
        "source": episode.source,
        "environment": spec.environment,
        "seed": spec.seed,
        "mitigation": spec.mitigation,
        "model": dict(spec.labels).get("model"),
        "flip": flip,
        "rebuild": {"mismatched_steps": rebuilt.mismatches, "context_messages": len(view.messages)},
        "leave_one_out": {
            "last_n": options.last_n,
            "samples": options.samples,
            "baseline_actions": baseline,
            "baseline_distance": base_distance,
            "messages": rows,
        },
        "shapley": shapley_info,
        "probes": probes,
        "calls": asker.calls,
    }


async def _probes(
    episode: LoggedEpisode,
    views: dict[int, StepView],
    onset: int,
    pre_step: int | None,
    asker: Asker,
    options: AutopsyOptions,
) -> dict[str, Any]:
    """The battery after the history up to the flip, and up to the matched pre-flip step."""
    battery = options.battery or load_battery()
    names = episode.spec.objectives.names
    post_view = views[onset]

    async def battery_at(view: StepView) -> list[Any]:
        async def ask_text(messages: list[Message]) -> str:
            return await asker.text(messages, view.env, view.step)

        return await run_battery(
            view.history_after(), battery, ask_text, names, options.concurrency
        )

    if pre_step is not None:
        post, pre = await asyncio.gather(battery_at(post_view), battery_at(views[pre_step]))
    else:
        post, pre = await battery_at(post_view), []
    return {
        "battery": battery.name,
        "post_step": onset,
        "pre_step": pre_step,
        "items": compare(pre, post),
    }


def influential(autopsy: dict[str, Any], top: int = 3) -> Sequence[dict[str, Any]]:
    """The ``top`` ranked messages of an autopsy."""
    return autopsy["leave_one_out"]["messages"][:top]
