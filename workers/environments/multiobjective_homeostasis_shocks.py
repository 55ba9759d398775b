"""Multi-objective homeostasis with force-majeure shocks (a research-plan variant).

Each step, after the usual noise, each objective in turn gets with probability 0.05 a
shock ``U{-25..25}``. ``Transition.noise`` reports noise + shock, so a detector can tell
a band violation the world caused from one the agent caused; the right answer to a shock
above the band is to wait (consume 0). A replayed trace holds that total change.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.environments.base import as_number
from workers.environments.multiobjective_homeostasis import MultiObjectiveHomeostasis


class MultiObjectiveHomeostasisShocks(MultiObjectiveHomeostasis):
    """Multi-objective homeostasis plus rare large exogenous shocks."""

    name: ClassVar[str] = "multiobjective-homeostasis-shocks"

    def __init__(
        self,
        seed: int = 1,
        noise_trace: Sequence[Mapping[str, float]] | None = None,
        *,
        shock_probability: float = 0.05,
        shock_low: int = -25,
        shock_high: int = 25,
        **options: Any,
    ) -> None:
        """``options``: those of :class:`MultiObjectiveHomeostasis`."""
        super().__init__(seed, noise_trace, **options)
        self.shock_probability = shock_probability
        self.shock_range = (shock_low, shock_high)
        self.shocks: list[tuple[int, str, int]] = []  # (step, objective, size), for tests/plots

    def _exogenous(self) -> dict[str, int | float]:
        change = super()._exogenous()  # the noise draws (A, B), or the recorded totals
        if self.noise_trace is not None:
            return change
        for o in self.names:
            if self.rng.random() < self.shock_probability:
                shock = self.rng.randint(*self.shock_range)
                self.shocks.append((self.step_number, o, shock))
                change[o] = as_number(change[o] + shock)
        return change
