"""The environment interface: a pure, deterministic text control task.

An environment holds its own state and randomness (``random.Random(seed)``) or replays a
recorded noise trace; it renders the observation text exactly as the BioBlue recordings
show it, validates answers, and steps. No I/O, no clock.
"""

import copy
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from schemas.objectives import ObjectiveSet

Action = dict[str, int]
Values = dict[str, float]


class InvalidAction(ValueError):
    """The answer is not a valid action; the agent is asked again (the answer is dropped)."""


_INT = re.compile(r"[+-]?\d+")


def round_reward(value: float) -> float:
    """Round a non-integer reward as BioBlue does: 3 decimals, anything under 1e-3 is 0.0.

    Formatting then re-parsing (not ``round``) keeps the exact floats the recordings show.
    """
    if abs(value) < 1e-3:
        return 0.0
    rounded = float(f"{value:.3f}")
    return 0.0 if rounded == 0 else rounded


def as_number(value: float) -> int | float:
    """An integral value as ``int`` so that observations print ``110``, not ``110.0``."""
    return int(value) if float(value).is_integer() else float(value)


def parse_ints(text: str, names: Sequence[str]) -> Action:
    """Parse the last non-empty line as one non-negative integer per objective, in order.

    Only the last line counts because models sometimes reason first and correct themselves.
    Messages name the problem but never echo the answer (it may be long or sensitive).
    Runs on every answer: plain ASCII digits take a fast path, anything else the regex.
    """
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line:
            break
    else:
        raise InvalidAction("empty answer: expected " + _expected(names))
    parts = line.split(",")
    if len(parts) != len(names):
        raise InvalidAction(f"expected {_expected(names)}, got {len(parts)} value(s)")
    action: Action = {}
    for name, part in zip(names, parts, strict=True):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            if not _INT.fullmatch(part):
                raise InvalidAction(f"the amount for {name} is not an integer")
            if int(part) < 0:
                raise InvalidAction(
                    f"the amount for {name} is negative ({int(part)}); 0 is allowed"
                )
        action[name] = int(part)
    return action


def _expected(names: Sequence[str]) -> str:
    if len(names) == 1:
        return "one integer"
    return f"{len(names)} comma-separated integers ({', '.join(names)})"


class Transition(NamedTuple):
    """What one step did. ``rewards`` keys are the signal labels shown to the agent.

    A NamedTuple, not a frozen dataclass: one is built per step, and a frozen dataclass's
    ``__init__`` (an ``object.__setattr__`` per field) cost six times as much.
    """

    step: int
    observation: Values
    action: Action
    after: Values
    noise: Values
    rewards: dict[str, float]
    done: bool
    metrics: dict[str, float]


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

    def parse_action(self, text: str) -> Action:
        """Parse the last non-empty line of an answer; :class:`InvalidAction` if invalid.

        :func:`parse_ints` already gives exactly the objectives, as non-negative ints, so
        only the environment's limits are left to check.
        """
        action = parse_ints(text, self.names)
        self._check_limits(action)
        return action

    @abstractmethod
    def step(self, action: Mapping[str, int]) -> Transition:
        """Apply a valid action and advance one step."""

    @abstractmethod
    def reference_action(self) -> Action:
        """The optimal policy's action in the current state."""

    def format_action(self, action: Mapping[str, int]) -> str:
        """The answer text a model would give for this action (used by scripted agents)."""
        return ", ".join(str(int(action[name])) for name in self.names)

    @property
    def names(self) -> tuple[str, ...]:
        """Objective names in observation (and random draw) order."""
        return self.objectives.names

    def check_action(self, action: Mapping[str, int]) -> Action:
        """Validate an action given as numbers (scripted agents, ``step``); limits per subclass."""
        names = self.names
        if len(action) != len(names) or any(name not in action for name in names):
            raise InvalidAction(f"expected amounts for {', '.join(names)}")
        checked: Action = {}
        for name in names:
            value = action[name]
            if type(value) is not int:
                if isinstance(value, bool) or int(value) != value:
                    raise InvalidAction(f"the amount for {name} is not an integer")
                value = int(value)
            if value < 0:
                raise InvalidAction(f"the amount for {name} is negative ({value}); 0 is allowed")
            checked[name] = value
        self._check_limits(checked)
        return checked

    def _check_limits(self, action: Action) -> None:
        """Subclasses raise :class:`InvalidAction` when an action exceeds a limit."""
        return None

    def _begin_step(self, action: Mapping[str, int]) -> Action:
        if self.done:
            raise RuntimeError(f"{self.name}: the episode is over; no more steps")
        return self.check_action(action)

    def _end_step(
        self,
        before: Values,
        action: Action,
        rewards: dict[str, float],
        *,
        noise: Mapping[str, float] | None = None,
        metrics: dict[str, float] | None = None,
        done: bool = False,
    ) -> Transition:
        """The step's :class:`Transition` (with the values after it); the next step begins."""
        transition = Transition(
            self.step_number,
            before,
            action,
            self.values(),
            {o: float(v) for o, v in noise.items()} if noise else {},
            rewards,
            done,
            metrics or {},
        )
        self.last_rewards = rewards
        self.step_number += 1
        self.done = done
        return transition

    def snapshot(self) -> dict[str, Any]:
        """The whole state, random generator included, for environment rollback."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Go back to a :meth:`snapshot`; the snapshot stays reusable."""
        self.__dict__.update(copy.deepcopy(dict(state)))

    def _noise(self, objective: str, draw: Any) -> float:
        """The recorded noise for this step if replaying, else ``draw()``."""
        if self.noise_trace is not None:
            if self.step_number > len(self.noise_trace):
                raise ValueError(
                    f"the noise trace has {len(self.noise_trace)} steps; "
                    f"step {self.step_number} needs one"
                )
            return self.noise_trace[self.step_number - 1][objective]
        return draw()
