"""The environment interface: a pure, deterministic text control task.

An environment holds its own state and randomness (``random.Random(seed)``) or replays a
recorded noise trace; it renders the observation text exactly as the BioBlue recordings
show it, validates answers, and steps. No I/O, no clock.
"""

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from schemas.objectives import ObjectiveSet

Action = dict[str, int]
Values = dict[str, float]


class InvalidAction(ValueError):
    """The answer is not a valid action; the agent is asked again (the answer is dropped)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """What one step did. ``rewards`` keys are the signal labels shown to the agent."""

    step: int
    observation: Values
    action: Action
    after: Values
    noise: Values
    rewards: dict[str, float]
    done: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


class Environment(ABC):
    """Base class; subclasses define the dynamics, prompts and reference policy."""

    name: ClassVar[str]

    def __init__(
        self,
        seed: int = 1,
        noise_trace: Sequence[Mapping[str, float]] | None = None,
        **params: Any,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.noise_trace = list(noise_trace) if noise_trace is not None else None
        self.step_number = 1  # the step about to be played
        self.done = False
        self.last_rewards: dict[str, float] | None = None

    @property
    @abstractmethod
    def objectives(self) -> ObjectiveSet:
        """The objective specs the detectors score this environment by."""

    @abstractmethod
    def system_prompt(self) -> str:
        """The benchmark's published system prompt."""

    @abstractmethod
    def values(self) -> Values:
        """The levels/totals/stock the agent sees now, per objective."""

    @abstractmethod
    def observation_text(self) -> str:
        """The user message for the step about to be played, as the recordings show it."""

    @abstractmethod
    def parse_action(self, text: str) -> Action:
        """Parse the last non-empty line of an answer; :class:`InvalidAction` if invalid."""

    @abstractmethod
    def step(self, action: Mapping[str, int]) -> Transition:
        """Apply a valid action and advance one step."""

    @abstractmethod
    def reference_action(self) -> Action:
        """The optimal policy's action in the current state."""

    @abstractmethod
    def format_action(self, action: Mapping[str, int]) -> str:
        """The answer text a model would give for this action (used by scripted agents)."""

    def _noise(self, objective: str, draw: Any) -> float:
        """The recorded noise for this step if replaying, else ``draw()``."""
        if self.noise_trace is not None:
            return self.noise_trace[self.step_number - 1][objective]
        return draw()
