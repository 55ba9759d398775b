"""Request and response bodies of the sidecar API (the wire contract of ``/v1``).

The minimal shapes in the issue are kept exactly: register with ``environment`` or
``objectives``; a step with ``step``, ``observation`` and ``action``; a verdict with
``verdict``, ``savepoint_step``, ``runaway_index`` and ``flags``. Everything else is an
optional extension. Numbers are strict, finite and bounded (:mod:`schemas.numbers`): a
NaN, a boolean or a 1e308 would poison the detector's state.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from schemas.episode import Action, DetectorConfig, FailMode, Flag, VerdictPolicy
from schemas.events import MAX_TOOL_CALLS, ToolCall, bounded_state
from schemas.numbers import FreeJSON, Integer, Number
from schemas.objectives import Name, ObjectiveSpec

Values = Annotated[dict[Name, Number], Field(min_length=1, max_length=16)]
OptValues = Annotated[dict[Name, Number], Field(max_length=16)]
LabelValue = Annotated[str, Field(max_length=64)]
LabelName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_][a-z0-9_]*$")]
EPISODE_ID = r"^[A-Za-z0-9_.:\-]+$"


class RegisterRequest(BaseModel):
    """Register an episode: a built-in environment, or a generic set of objectives."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=EPISODE_ID)
    environment: str | None = Field(default=None, max_length=64)
    env_options: FreeJSON = Field(default_factory=dict, max_length=16)
    objectives: list[ObjectiveSpec] | None = Field(default=None, min_length=1, max_length=16)
    total_action_limit: Number | None = Field(default=None, ge=0)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    policy: VerdictPolicy = Field(default_factory=VerdictPolicy, description="action per flag")
    fail_mode: FailMode | None = None
    steps: Integer = Field(default=100, ge=1, le=100_000, description="expected episode length")
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=16)

    @model_validator(mode="after")
    def _one_source(self) -> "RegisterRequest":
        if (self.environment is None) == (self.objectives is None):
            raise ValueError("give either 'environment' or 'objectives'")
        return self


class StepRequest(BaseModel):
    """One agent step: what it saw before acting, what it did, optional rewards and text.

    A tool-using agent sends ``tool_calls`` and/or ``text`` (and its ``state``) and may
    leave ``observation``/``action`` out; a step carries at least one of ``action``,
    ``tool_calls`` or ``text``.
    """

    model_config = ConfigDict(extra="forbid")

    step: Integer = Field(ge=1, le=10_000_000)
    observation: OptValues = Field(default_factory=dict)
    action: OptValues = Field(default_factory=dict)
    tool_calls: list[ToolCall] = Field(default_factory=list, max_length=MAX_TOOL_CALLS)
    state: dict[str, JsonValue] | None = None
    rewards: dict[Annotated[str, Field(max_length=64)], Number] = Field(
        default_factory=dict, max_length=32
    )
    text: str | None = Field(default=None, max_length=100_000)
    invalid_answers: Integer = Field(default=0, ge=0, le=1000)
    mitigation: str | None = Field(default=None, max_length=64)

    @field_validator("state")
    @classmethod
    def _bounded_state(cls, v: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        return bounded_state(v)

    @property
    def empty(self) -> bool:
        """Neither an action nor tool calls nor text: the route answers 422 ``action``."""
        return not self.action and not self.tool_calls and self.text is None


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["done", "exhausted", "abandoned", "error", "cancelled"] = "done"


class StepVerdict(BaseModel):
    """The answer to one step. ``fail_mode`` is set when the detectors did not answer."""

    episode_id: str
    step: int
    verdict: Action
    savepoint_step: int | None
    runaway_index: float
    flags: list[str]
    hazard: float = 0.0
    detections: list[str] = Field(default_factory=list)
    reminder: str | None = None
    reason: str | None = None
    cause: Flag | None = None
    policy: Action | None = None
    command_id: str | None = None
    fail_mode: FailMode | None = None
    latency_ms: float = 0.0
