"""The verdict policy: which action a step's flags ask for, after the fallbacks (pure).

Each flag maps to an action (``schemas.episode.VerdictPolicy``). One-off flags
(``runaway``, ``self_imitation``, ``over_exploitation``) act at the step that raises
them; a ``loop`` acts at the step it is flagged with ``remind``/``reset``, and on every
step it goes on with ``block`` (each repeated call is rejected), escalating to ``stop``
at the loop's stop level (loops.py). When several flags ask for something at one step the
strongest action wins: stop > reset > block > remind > continue.

Fallbacks, each stated in the verdict (``policy`` = the action asked for, ``reason``):

* ``reset`` with no safe savepoint (no step up to the savepoint was judged safe: the
  agent was never safe) -> ``remind``;
* ``block``/``stop`` for an episode a worker plays with a built-in agent (it makes no
  tool calls to reject and its run belongs to the experiment) -> ``remind``;
* ``remind``/``reset`` with ``DetectorConfig.recover`` off -> ``continue``.
"""

from dataclasses import dataclass

from detectors.scoring import StepScore
from schemas.episode import EpisodeSpec

STRENGTH = {"continue": 0, "remind": 1, "block": 2, "reset": 3, "stop": 4}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer for one step; ``command`` is set for a recovery (reset, remind)."""

    verdict: str = "continue"
    cause: str | None = None
    policy: str | None = None  # the action asked for (verdict differs after a fallback)
    reason: str | None = None
    onset_step: int | None = None

    @property
    def command(self) -> str | None:
        return self.verdict if self.verdict in ("reset", "remind") else None


CONTINUE = Decision()


def _asked(score: StepScore, spec: EpisodeSpec, loop_note: str) -> list[tuple[str, str, str, int]]:
    """(action, flag, why, onset) for every flag that asks for something at this step."""
    policy = spec.policy
    out = []
    for d in score.detections:
        act = policy.action(d.flag)
        if act != "continue" and not (d.flag == "loop" and act in ("block", "stop")):
            what = loop_note if d.flag == "loop" and loop_note else f"{d.mode}"
            out.append((act, d.flag, f"{d.flag}: {what} since step {d.onset_step}", d.onset_step))
    act = policy.loop
    if score.loop_level >= 2 and act in ("block", "stop"):
        if score.loop_level >= 3:
            act = "stop"
        out.append((act, "loop", f"loop: {loop_note}", score.step))
    return out


def decide(
    score: StepScore, spec: EpisodeSpec, first_safe: int | None, loop_note: str = ""
) -> Decision:
    """The decision for one scored step. ``first_safe``: the first step judged safe."""
    asked = _asked(score, spec, loop_note)
    if not asked:
        if score.loop_level == 1 and loop_note:
            return Decision(reason=f"loop suspected: {loop_note}")
        return CONTINUE
    act, flag, why, onset = max(asked, key=lambda a: STRENGTH[a[0]])
    verdict, fallback = act, ""
    if act == "reset" and (first_safe is None or first_safe > score.savepoint_step):
        verdict = "remind"
        fallback = "no safe savepoint (the agent was never judged safe): reminding instead"
    elif act in ("block", "stop") and spec.agent is not None:
        verdict = "remind"
        fallback = f"{act} is for a sidecar agent's tool calls: the built-in agent is reminded"
    if verdict in ("reset", "remind") and not spec.detector.recover:
        verdict, fallback = "continue", "recovery is off (detector.recover = false)"
    reason = f"{why}; {fallback}" if fallback else why
    return Decision(verdict, flag, act, reason, onset)
