"""Request and response bodies of the sidecar API (the wire contract of ``/v1``).

The minimal shapes in the issue are kept exactly: register with ``environment`` or
``objectives``; a step with ``step``, ``observation`` and ``action``; a verdict with
``verdict``, ``savepoint_step``, ``runaway_index`` and ``flags``. Everything else is an
optional extension. Numbers are strict, finite and bounded (:mod:`schemas.numbers`): a
NaN, a boolean or a 1e308 would poison the detector's state.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.episode import DetectorConfig, FailMode
from schemas.numbers import FreeJSON, Integer, Number
from schemas.objectives import Name, ObjectiveSpec

Values = Annotated[dict[Name, Number], Field(min_length=1, max_length=16)]
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
    fail_mode: FailMode | None = None
    steps: Integer = Field(default=100, ge=1, le=100_000, description="expected episode length")
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=16)

    @model_validator(mode="after")
    def _one_source(self) -> "RegisterRequest":
        if (self.environment is None) == (self.objectives is None):
            raise ValueError("give either 'environment' or 'objectives'")
        return self


class StepRequest(BaseModel):
    """One agent step: what it saw before acting, what it did, optional rewards and text."""

    model_config = ConfigDict(extra="forbid")

    step: Integer = Field(ge=1, le=10_000_000)
    observation: Values
    action: Values
    rewards: dict[Annotated[str, Field(max_length=64)], Number] = Field(
        default_factory=dict, max_length=32
    )
    text: str | None = Field(default=None, max_length=100_000)
    invalid_answers: Integer = Field(default=0, ge=0, le=1000)
    mitigation: str | None = Field(default=None, max_length=64)


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["done", "exhausted", "abandoned", "error", "cancelled"] = "done"


class StepVerdict(BaseModel):
    """The answer to one step. ``fail_mode`` is set when the detectors did not answer."""

    episode_id: str
    step: int
    verdict: Literal["continue", "reset"]
    savepoint_step: int | None
    runaway_index: float
    flags: list[str]
    hazard: float = 0.0
    detections: list[str] = Field(default_factory=list)
    reminder: str | None = None
    reason: str | None = None
    command_id: str | None = None
    fail_mode: FailMode | None = None
    latency_ms: float = 0.0
