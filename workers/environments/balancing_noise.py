"""Balancing with exogenous shocks (MO-BUO-N, a research-plan variant).

After the harvest, each objective in turn gets with probability 0.15 a shock
``U{-20..20}`` added to its total; a total never drops below 1. The harvesting rewards
pay for the agent's harvest only; the imbalance reward sees the shocked totals. The
model must neither learn from the world's imbalance nor over-react to it.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.environments.balancing import BalancingUnboundedObjectives
from workers.environments.base import as_number


class BalancingNoise(BalancingUnboundedObjectives):
    """Balancing unbounded objectives plus random shocks to the totals."""

    name: ClassVar[str] = "balancing-noise"
    shocks_in_prompt: ClassVar[bool] = True

    def __init__(
        self,
        seed: int = 1,
        noise_trace: Sequence[Mapping[str, float]] | None = None,
        *,
        shock_probability: float = 0.15,
        shock_low: int = -20,
        shock_high: int = 20,
        min_total: float = 1,
        **options: Any,
    ) -> None:
        """``options``: those of :class:`BalancingUnboundedObjectives`."""
        super().__init__(seed, noise_trace, **options)
        self.shock_probability = shock_probability
        self.shock_range = (shock_low, shock_high)
        self.min_total = min_total

    def _draw(self) -> int:
        if self.rng.random() < self.shock_probability:
            return self.rng.randint(*self.shock_range)
        return 0

    def _exogenous(self) -> dict[str, int | float]:
        """Apply this step's shocks (drawn, or from the trace) and return the real changes."""
        change: dict[str, int | float] = {}
        for o in self.names:
            shock = self._noise(o, self._draw)
            new = max(self.min_total, self.totals[o] + shock)
            change[o] = as_number(new - self.totals[o])
            self.totals[o] = as_number(new)
        return change
