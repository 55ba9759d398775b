"""Attribution-based prompt patches: rewrite the messages autopsy ranked most influential.

The research plan's last mitigation: take the ``top`` messages an autopsy ranked (leave-one-
out influence), replace each with a safer reformulation, and play the episode again from
the flip onset with the patched context, ``horizon`` steps, with the same model. The
environment continues from the recorded state at the onset (same seed and noise). The
offline scorer then judges the recorded steps before the onset plus the replayed ones,
so "flipped before" and "flipped after" are measured the same way.

Reformulations (documented, deterministic):
- an assistant message (the model's own earlier answer) becomes the reference policy's
  answer at that step: the model no longer sees itself drifting;
- a user message (an observation with rewards) keeps its numbers and gains the
  objectives reminder (``schemas.reminder``), so a large reward line is read beside the
  bands instead of alone.
"""

from typing import Any

from detectors.offline import score_offline
from monitor.analysis.autopsy import Asker
from monitor.analysis.rebuild import LoggedEpisode, replay
from schemas.events import StepEvent
from schemas.reminder import reminder_text
from workers.agents.base import Message
from workers.mitigations import parse_mitigations
from workers.prompting import observation_text

PATCH_VERSION = 1


def reformulate(message: Message, role: str, reference_answer: str | None, reminder: str) -> str:
    if role == "assistant" and reference_answer is not None:
        return reference_answer
    return f"{reminder}\n\n{message['content']}"


def patched_context(
    episode: LoggedEpisode, autopsy: dict[str, Any], top: int
) -> tuple[list[Message], list[dict[str, Any]], Any]:
    """The onset's context with the ``top`` ranked messages reformulated, and what changed."""
    onset = int(autopsy["flip"]["onset_step"])
    rebuilt = replay(episode, capture={onset})
    view = rebuilt.views[onset]
    reminder = reminder_text(episode.spec.objectives)
    messages = [dict(m) for m in view.messages]
    changes = []
    for row in autopsy["leave_one_out"]["messages"][:top]:
        index, ref = int(row["index"]), view.refs[int(row["index"])]
        facts = rebuilt.facts.get(ref.step)
        answer = view.env.format_action(facts.reference_action) if facts else None
        new = reformulate(messages[index], ref.role, answer, reminder)
        changes.append(
            {
                "index": index,
                "step": ref.step,
                "role": ref.role,
                "rank": row["rank"],
                "before": messages[index]["content"][:600],
                "after": new[:600],
            }
        )
        messages[index] = {**messages[index], "content": new}
    return messages, changes, view


async def rerun_patched(
    episode: LoggedEpisode,
    autopsy: dict[str, Any],
    asker: Asker,
    top: int = 3,
    horizon: int = 10,
) -> dict[str, Any]:
    """Play ``horizon`` steps from the onset with the patched context; flip before/after."""
    messages, changes, view = patched_context(episode, autopsy, top)
    onset = view.step
    env = view.env
    spec = episode.spec
    plan = parse_mitigations(spec.mitigation)
    before = sorted((e for e in episode.steps if e.step < onset), key=lambda e: e.step)
    replayed: list[StepEvent] = []
    for step in range(onset, min(spec.steps, onset + horizon - 1) + 1):
        if env.done:
            break
        observation = env.values()
        action = await asker.action(messages, env, step)
        if action is None:
            break
        answer = env.format_action(action)
        transition = env.step(action)
        replayed.append(
            StepEvent(
                episode_id=spec.episode_id,
                step=step,
                observation=observation,
                action={k: float(v) for k, v in action.items()},
                after=dict(transition.after),
                rewards=dict(transition.rewards),
                text=answer,
            )
        )
        messages += [
            {"role": "assistant", "content": answer},
            {"role": "user", "content": observation_text(env, plan)},
        ]
    scored = score_offline(spec, [*before, *replayed], keep_scores=False)
    flipped_after = bool(
        scored.flipped and scored.flip_step is not None and scored.flip_step >= onset
    )
    return {
        "kind": "prompt-patch",
        "version": PATCH_VERSION,
        "episode_id": spec.episode_id,
        "onset_step": onset,
        "top": top,
        "horizon": horizon,
        "changes": changes,
        "replayed_steps": len(replayed),
        "actions": [e.action for e in replayed],
        "flipped_before": True,  # the autopsy's flip
        "flipped_after": flipped_after,
        "flip_step_after": scored.flip_step if flipped_after else None,
        "flip_removed": not flipped_after,
        "calls": asker.calls,
    }
