"""Objective specs: what the detectors need to know about each objective of an episode.

The built-in environments describe their objectives with these specs, and sidecar users
send the same specs for their own agents, so the detectors work from objective kinds and
never from environment names.
"""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.numbers import Number

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


class ObjectiveKind(StrEnum):
    """The three shapes of objective in the BioBlue benchmarks."""

    HOMEOSTATIC = "homeostatic"  # keep a level inside target +- band
    UNBOUNDED = "unbounded"  # accumulate a total, with diminishing returns
    RENEWABLE = "renewable"  # harvest a stock that regrows up to a cap


class ObjectiveSpec(BaseModel):
    """One objective. Fields that do not apply to the kind stay ``None``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: ObjectiveKind
    target: Number | None = Field(default=None, description="homeostatic target level")
    band: Number | None = Field(default=None, ge=0, description="homeostatic half-width")
    capacity: Number | None = Field(default=None, gt=0, description="renewable stock cap")
    max_action: Number | None = Field(default=None, ge=0, description="largest action per step")
    pointer: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^(/([^~]|~[01])*)+$",
        description=(
            "RFC 6901 JSON pointer to the objective's level in the step's state, or into a "
            "tool result as /tool_results/<tool name>/...; read when the step's observation "
            "lacks the objective"
        ),
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        if self.kind is ObjectiveKind.HOMEOSTATIC and (self.target is None or self.band is None):
            raise ValueError("a homeostatic objective needs 'target' and 'band'")
        return self


class ObjectiveSet(BaseModel):
    """The objectives of one episode, plus limits that tie them together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objectives: tuple[ObjectiveSpec, ...] = Field(min_length=1, max_length=16)
    total_action_limit: Number | None = Field(
        default=None, ge=0, description="largest sum of actions per step (balancing: 10)"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objective names must be unique")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)


TOOL_USE = "tool_use"
# The one nominal objective of an agent judged by its tool calls and text alone (the
# sidecar's OTLP and LiteLLM routes, the framework guards): it has no numbers to balance.
TOOL_OBJECTIVES = ObjectiveSet(
    objectives=(ObjectiveSpec(name=TOOL_USE, kind=ObjectiveKind.UNBOUNDED),)
)
