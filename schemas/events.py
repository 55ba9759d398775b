"""Stream events: a discriminated union of pydantic models with a ``kind`` literal.

Each event carries the episode id, the step it concerns and a UTC timestamp (Unix
seconds). ``SCHEMA_VERSION`` is written beside every entry by :mod:`schemas.wire`; a
reader refuses entries of another version instead of guessing.
"""

import itertools
import os
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.episode import EpisodeSpec
from schemas.numbers import Values

SCHEMA_VERSION = 1

MAX_TEXT = 100_000  # characters of one agent answer


def _now() -> float:
    return time.time()


class _Ids:
    """Unique event ids: a random per-process prefix and a counter (uuid4 cost 10 us/event)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(10).hex()
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):012x}"


_new_id = _Ids()


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=_new_id, max_length=64)
    episode_id: str = Field(min_length=1, max_length=128)
    ts: float = Field(default_factory=_now, description="UTC Unix seconds when emitted")


class EpisodeStarted(_Event):
    """First entry of every episode: the detectors build their state from the spec."""

    kind: Literal["episode_started"] = "episode_started"
    step: Literal[0] = 0
    spec: EpisodeSpec


class StepEvent(_Event):
    """One agent step: what the agent saw, what it did and what followed."""

    kind: Literal["step"] = "step"
    step: int = Field(ge=1)
    observation: Values = Field(description="levels/totals/stock the agent saw before acting")
    action: Values = Field(description="amount per objective")
    after: Values | None = Field(default=None, description="levels after action and noise")
    noise: Values | None = Field(
        default=None, description="the environment's own change per objective (noise, shocks)"
    )
    rewards: Values = Field(default_factory=dict)
    reference: Values | None = Field(default=None, description="reference policy's action")
    text: str | None = Field(default=None, max_length=MAX_TEXT, description="raw agent answer")
    invalid_answers: int = Field(default=0, ge=0, description="rejected answers this step")
    mitigation: str | None = None
    voluntary_reset: bool = Field(default=False, description="the agent answered RESET")
    usage: Values | None = Field(
        default=None, description="input_tokens, output_tokens, cost_usd, latency_s"
    )


class Verdict(_Event):
    """The detectors' answer to one step; also the signal that makes a savepoint."""

    kind: Literal["verdict"] = "verdict"
    step: int = Field(ge=1)
    verdict: Literal["continue", "reset"]
    savepoint_step: int | None = Field(default=None, ge=0)
    runaway_index: float = Field(ge=0, le=1)
    hazard: float = Field(default=0.0, ge=0, le=1)
    flags: list[str] = Field(default_factory=list, description="flags raised so far")
    detections: list[str] = Field(default_factory=list, description="flags raised at this step")
    step_ts: float = Field(description="ts of the step this answers (for lag)")
    reason: str | None = Field(
        default=None,
        max_length=2_000,
        description="what the detector noticed: a gap, a reset state",
    )


class FlipEvent(_Event):
    """A flip was detected: raised once per episode and flag kind."""

    kind: Literal["flip"] = "flip"
    step: int = Field(ge=1, description="step at which the flip was detected")
    flag: Literal["runaway", "self_imitation"] = "runaway"
    onset_step: int = Field(ge=0, description="step at which the sustained runaway began")
    mode: str = Field(default="unknown", description="unbounded_max, single_objective, ...")
    objective: str | None = None
    runaway_index: float = Field(ge=0, le=1)
    step_ts: float


class RecoveryCommand(_Event):
    """Restore the agent's context to a savepoint. Applied once per ``command_id``."""

    kind: Literal["recovery_command"] = "recovery_command"
    step: int = Field(ge=1, description="step at which the flip was detected")
    command_id: str = Field(min_length=1, max_length=200)
    savepoint_step: int = Field(ge=0, description="restore the context as of this step")
    reminder: str | None = Field(default=None, max_length=10_000)
    reason: str = ""
    rollback_environment: bool = False
    step_ts: float


class RecoveryApplied(_Event):
    """A worker applied a recovery command."""

    kind: Literal["recovery_applied"] = "recovery_applied"
    step: int = Field(ge=0, description="last step played when the recovery was applied")
    command_id: str
    savepoint_step: int = Field(ge=0)
    messages_dropped: int = Field(ge=0)


class EpisodeFinished(_Event):
    """Last entry of an episode."""

    kind: Literal["episode_finished"] = "episode_finished"
    step: int = Field(ge=0, description="steps played")
    reason: Literal["done", "exhausted", "abandoned", "error", "cancelled"] = "done"
    error: str | None = Field(default=None, max_length=2_000)


Event = Annotated[
    EpisodeStarted
    | StepEvent
    | Verdict
    | FlipEvent
    | RecoveryCommand
    | RecoveryApplied
    | EpisodeFinished,
    Field(discriminator="kind"),
]
