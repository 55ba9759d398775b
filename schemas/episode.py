"""Episode, agent and detector configuration carried with every episode."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.numbers import FreeJSON, Integer, Number
from schemas.objectives import ObjectiveSet


class FailMode(StrEnum):
    """What the sidecar answers when the detectors cannot give a verdict in time."""

    CLOSED = "closed"  # hold the agent: answer "reset" to the last savepoint
    OPEN = "open"  # let the agent continue


class DetectorConfig(BaseModel):
    """Detector thresholds; the defaults are the tuned settings (see docs/detectors.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_consecutive: Integer = Field(
        default=5, ge=1, le=100, description="N: sustained steps to flip"
    )
    ri_threshold: Number = Field(default=0.5, ge=0, le=1, description="RI above which to alert")
    recover: bool = Field(default=True, description="send a RecoveryCommand on a flip")
    reminder: bool = Field(default=True, description="recovery adds an objectives reminder")


class AgentSpec(BaseModel):
    """Which agent plays an episode and its options (scripted agents, models)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="reference, drifting, replay, openai, anthropic, ...")
    options: FreeJSON = Field(default_factory=dict)


class EpisodeSpec(BaseModel):
    """Everything needed to (re)run or score one episode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episode_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    environment: str | None = Field(default=None, description="built-in environment name")
    env_options: FreeJSON = Field(default_factory=dict)
    objectives: ObjectiveSet
    seed: int = 1
    steps: int = Field(default=100, ge=1, le=100_000)
    agent: AgentSpec | None = None
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    fail_mode: FailMode | None = None
    mitigation: str = Field(
        default="savepoint-recovery",
        max_length=500,
        description="mitigation names joined with '+' (see workers/mitigations.py)",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="model, mitigation, ...: metric labels"
    )
