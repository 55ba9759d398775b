"""Stream events: a discriminated union of pydantic models with a ``kind`` literal.

Each event carries the episode id, the step it concerns and a UTC timestamp (Unix
seconds). ``SCHEMA_VERSION`` is written beside every entry by :mod:`schemas.wire`; a
reader refuses entries of another version instead of guessing.
"""

import itertools
import os
import time
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from schemas.episode import Action, EpisodeSpec, Flag
from schemas.numbers import Values, check_json

SCHEMA_VERSION = 1

MAX_TEXT = 100_000  # characters of one agent answer
MAX_TOOL_CALLS = 32  # tool calls in one step
MAX_TOOL_ARGS = 16_384  # bytes of one tool call's arguments (as JSON)
MAX_TOOL_RESULT = 65_536  # bytes of one tool call's result (as JSON)
MAX_STATE = 65_536  # bytes of a step's agent state (as JSON)
MAX_TOOL_DEPTH = 16  # nesting of tool arguments, results and state (a stream entry reads back)
MAX_TOOL_NODES = 10_000  # values in one of them


def _json_size(value: object) -> int:
    return len(value.encode()) if isinstance(value, str) else len(orjson.dumps(value))


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


class ToolCall(BaseModel):
    """One tool call of a tool-using agent: its name, JSON arguments and (once run) result.

    ``arguments`` is the JSON object, or the raw string a model produced (OpenAI's
    ``function.arguments``); the loop detector canonicalises either. Sizes are bounded so
    one step stays one bounded stream entry.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, JsonValue] | str = Field(default_factory=dict)
    result: JsonValue | None = None
    id: str | None = Field(default=None, max_length=128)

    @field_validator("arguments")
    @classmethod
    def _bounded_arguments(cls, v: dict[str, JsonValue] | str) -> dict[str, JsonValue] | str:
        check_json(v, max_depth=MAX_TOOL_DEPTH, max_nodes=MAX_TOOL_NODES)
        if _json_size(v) > MAX_TOOL_ARGS:
            raise ValueError(f"arguments exceed {MAX_TOOL_ARGS} bytes as JSON")
        return v

    @field_validator("result")
    @classmethod
    def _bounded_result(cls, v: JsonValue | None) -> JsonValue | None:
        check_json(v, max_depth=MAX_TOOL_DEPTH, max_nodes=MAX_TOOL_NODES)
        if v is not None and _json_size(v) > MAX_TOOL_RESULT:
            raise ValueError(f"result exceeds {MAX_TOOL_RESULT} bytes as JSON")
        return v


def bounded_state(v: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    """``v`` within the bounds: a nesting depth and size the detector can read back."""
    check_json(v, max_depth=MAX_TOOL_DEPTH, max_nodes=MAX_TOOL_NODES)
    if v is not None and _json_size(v) > MAX_STATE:
        raise ValueError(f"state exceeds {MAX_STATE} bytes as JSON")
    return v


class StepEvent(_Event):
    """One agent step: what the agent saw, what it did and what followed.

    A tool-using agent's step may leave ``observation`` and ``action`` empty and carry
    ``tool_calls`` and/or ``text`` instead (its objectives then come from ``state`` or tool
    results through ``ObjectiveSpec.pointer``).
    """

    kind: Literal["step"] = "step"
    step: int = Field(ge=1)
    observation: Values = Field(
        default_factory=dict, description="levels/totals/stock the agent saw before acting"
    )
    action: Values = Field(default_factory=dict, description="amount per objective")
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
    tool_calls: list[ToolCall] = Field(default_factory=list, max_length=MAX_TOOL_CALLS)
    state: dict[str, JsonValue] | None = Field(
        default=None, description="the agent's own state (JSON), for pointer objectives"
    )

    @field_validator("state")
    @classmethod
    def _bounded_state(cls, v: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        return bounded_state(v)


class Verdict(_Event):
    """The detectors' answer to one step; also the signal that makes a savepoint."""

    kind: Literal["verdict"] = "verdict"
    step: int = Field(ge=1)
    verdict: Action
    savepoint_step: int | None = Field(default=None, ge=0)
    runaway_index: float = Field(ge=0, le=1)
    hazard: float = Field(default=0.0, ge=0, le=1)
    flags: list[str] = Field(default_factory=list, description="flags raised so far")
    detections: list[str] = Field(default_factory=list, description="flags raised at this step")
    step_ts: float = Field(description="ts of the step this answers (for lag)")
    cause: Flag | None = Field(default=None, description="flag behind a non-continue verdict")
    policy: Action | None = Field(
        default=None, description="the action the policy asked for, when a fallback applied"
    )
    reason: str | None = Field(default=None, max_length=2_000)
    reminder: str | None = Field(default=None, max_length=10_000)


class FlipEvent(_Event):
    """A flip was detected: raised once per episode and flag kind."""

    kind: Literal["flip"] = "flip"
    step: int = Field(ge=1, description="step at which the flip was detected")
    flag: Flag = "runaway"
    onset_step: int = Field(ge=0, description="step at which the sustained runaway began")
    mode: str = Field(default="unknown", description="unbounded_max, single_objective, ...")
    objective: str | None = None
    runaway_index: float = Field(ge=0, le=1)
    step_ts: float


class RecoveryCommand(_Event):
    """Restore the agent's context to a savepoint (``reset``) or add the reminder and keep
    the context (``remind``). Applied once per ``command_id``."""

    kind: Literal["recovery_command"] = "recovery_command"
    step: int = Field(ge=1, description="step at which the flip was detected")
    command_id: str = Field(min_length=1, max_length=200)
    action: Literal["reset", "remind"] = "reset"
    cause: Flag | None = Field(default=None, description="the flag that asked for it")
    savepoint_step: int = Field(ge=0, description="reset: restore the context as of this step")
    reminder: str | None = Field(default=None, max_length=10_000)
    reason: str = ""
    rollback_environment: bool = False
    step_ts: float


class RecoveryApplied(_Event):
    """A worker applied a recovery command."""

    kind: Literal["recovery_applied"] = "recovery_applied"
    step: int = Field(ge=0, description="last step played when the recovery was applied")
    command_id: str
    action: Literal["reset", "remind"] = "reset"
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
