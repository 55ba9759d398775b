"""Corrective fine-tuning datasets: flipped episodes with the reference policy's answers.

Trajectory choice: the **corrected** trajectory. Up to the flip onset the conversation is
the recorded one (the model's own answers, which were fine); from the onset on, every
assistant turn is the reference policy's action and the environment is re-simulated
along those actions (same seed and logged noise, which is exogenous). Why not keep the
recorded observations: after the first corrected turn they would show the consequences
of runaway actions the assistant turns no longer contain (levels rising by 20 after "1,
1"), teaching the model that its actions do not matter. The corrected conversation is
consistent: every observation follows from the answers before it.

Each line is an OpenAI chat fine-tuning example ``{"messages": [...]}``. Assistant turns
carry ``"weight"`` (OpenAI's per-message training switch): 0 before the onset, 1 from it,
so training targets only the corrected turns (``all_weights=True`` trains on all).
Reminders of a ``reminder-every-K`` mitigation are kept where the runner put them;
context policies (short windows, summaries, recoveries) are not applied: an example is
the whole conversation.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.rebuild import LoggedEpisode, action_of, fresh_environment, load_episode_log
from monitor.analysis.results import EpisodeRecord, read_episodes
from monitor.analysis.splits import SplitRule, default_rule, subset_sizes
from schemas.reminder import reminder_text
from workers.mitigations import parse_mitigations
from workers.prompting import observation_text, system_prompt

MANIFEST = "manifest.json"
HELDOUT = "heldout.jsonl"


class DatasetError(ValueError):
    """An episode that cannot become an example; the message says why."""


@dataclass(slots=True)
class Example:
    episode_id: str
    onset: int
    messages: list[dict[str, Any]]
    corrected_turns: int

    def line(self) -> bytes:
        return orjson.dumps({"messages": self.messages})


def corrected_example(episode: LoggedEpisode, onset: int, all_weights: bool = False) -> Example:
    """The corrected conversation of a flipped episode (see the module doc)."""
    spec = episode.spec
    plan = parse_mitigations(spec.mitigation)
    steps = sorted(episode.steps, key=lambda e: e.step)
    env = fresh_environment(spec, [dict(e.noise or {}) for e in steps])
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(env, spec, plan)}]
    corrected = 0
    for event in steps:
        if env.done:
            break
        step = event.step
        text = observation_text(env, plan)
        if plan.reminder_every and step % plan.reminder_every == 0:
            text = f"{reminder_text(spec.objectives)}\n\n{text}"
        messages.append({"role": "user", "content": text})
        if step < onset:
            values = env.values()
            if any(abs(values[k] - v) > 1e-6 for k, v in event.observation.items()):
                raise DatasetError(f"step {step}: the re-simulated levels differ from the log")
            action, answer = action_of(event), event.text or ""
            weight = 1 if all_weights else 0
        else:
            action = env.reference_action()
            answer, weight = env.format_action(action), 1
            corrected += 1
        env.step(action)
        messages.append({"role": "assistant", "content": answer, "weight": weight})
    if not corrected:
        raise DatasetError(f"no step at or after the onset {onset}")
    return Example(spec.episode_id, onset, messages, corrected)


@dataclass(slots=True)
class ExportReport:
    manifest: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)


def _onset(record: EpisodeRecord, episode: LoggedEpisode) -> int:
    if record.first_flip_onset is not None:
        return max(1, record.first_flip_onset)
    from detectors.offline import score_offline

    scored = score_offline(episode.spec, sorted(episode.steps, key=lambda e: e.step))
    if scored.flip_step is None:
        raise DatasetError("marked flipped, but the scorer finds no onset")
    return max(1, scored.flip_step)


def _order_key(seed: int, episode_id: str) -> str:
    return hashlib.sha256(f"{seed}:{episode_id}".encode()).hexdigest()


def condition_of(episode: LoggedEpisode, flipped: bool) -> dict[str, Any]:
    """An episode's starting condition: what ``propensity`` needs to play it again."""
    spec = episode.spec
    return {
        "environment": spec.environment,
        "seed": spec.seed,
        "steps": spec.steps,
        "env_options": dict(spec.env_options),
        "mitigation": spec.mitigation,
        "episode_id": spec.episode_id,
        "flipped": flipped,
    }


def export_dataset(
    results: Path,
    out: Path,
    rule: SplitRule | None = None,
    seed: int = 0,
    all_weights: bool = False,
) -> ExportReport:
    """Write ``train-kNNN.jsonl`` subsets, ``heldout.jsonl`` and ``manifest.json``."""
    records = [r for r in read_episodes(results) if r.outcome in ("done", "exhausted")]
    rule = rule or default_rule(records)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport({})
    train: list[Example] = []
    heldout: list[Example] = []
    conditions: dict[tuple, dict[str, Any]] = {}
    for record in records:
        held = rule.is_heldout(record)
        if not (record.flipped or held):
            continue
        try:
            episode = load_episode_log(record.log)
            if held:
                condition = condition_of(episode, record.flipped)
                key = tuple(v for k, v in condition.items() if k not in ("episode_id", "flipped"))
                key = tuple(orjson.dumps(v) for v in key)
                conditions.setdefault(key, condition)
            if record.flipped:
                example = corrected_example(episode, _onset(record, episode), all_weights)
                (heldout if held else train).append(example)
        except (DatasetError, ValueError) as exc:
            report.skipped.append({"episode_id": record.episode_id, "reason": str(exc)})
    train.sort(key=lambda e: _order_key(seed, e.episode_id))
    heldout.sort(key=lambda e: e.episode_id)
    subsets = []
    for k in subset_sizes(len(train)):
        name = f"train-k{k:03d}.jsonl"
        _write(out / name, train[:k])
        subsets.append({"k": k, "file": name, "episodes": [e.episode_id for e in train[:k]]})
    _write(out / HELDOUT, heldout)
    manifest = {
        "kind": "corrective-dataset",
        "version": 1,
        "results": str(results),
        "format": "openai-chat-jsonl",
        "trajectory": "corrected: recorded turns before the flip onset, reference policy "
        "turns from it, environment re-simulated along them",
        "weights": "all 1" if all_weights else "assistant weight 0 before the onset, 1 after",
        "split_rule": {
            "description": rule.describe(),
            "heldout_environments": sorted(rule.heldout_environments),
            "heldout_seeds": sorted(rule.heldout_seeds),
        },
        "order_seed": seed,
        "train_pool": [e.episode_id for e in train],
        "subsets": subsets,
        "heldout": {
            "file": HELDOUT,
            "episodes": [e.episode_id for e in heldout],
            "conditions": list(conditions.values()),
        },
        "examples": {
            e.episode_id: {"onset": e.onset, "corrected_turns": e.corrected_turns}
            for e in [*train, *heldout]
        },
        "skipped": report.skipped,
    }
    (out / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    report.manifest = manifest
    return report


def _write(path: Path, examples: Sequence[Example]) -> None:
    path.write_bytes(b"".join(e.line() + b"\n" for e in examples))


def load_conditions(split: Path) -> list[dict[str, Any]]:
    """The starting conditions of a held-out split, from ``heldout.jsonl``'s manifest.

    ``split`` is the held-out JSONL (its directory's ``manifest.json`` is read) or the
    manifest itself.
    """
    manifest_path = split if split.name == MANIFEST else split.parent / MANIFEST
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
        conditions = manifest["heldout"]["conditions"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{manifest_path}: not a dataset manifest: {exc}") from None
    if not conditions:
        raise DatasetError(f"{manifest_path}: the held-out split has no starting conditions")
    return list(conditions)
