"""3- and 4-objective variants of multi-objective homeostasis and of balancing.

From the research plan: vary the number of concurrent objectives. Objective ``i`` (A = 1,
B = 2, C = 3, D = 4) follows the two-objective benchmarks' own progression: homeostasis
target = initial level ``100 + 10 i``, hysteresis ``10 + i``, noise ``U{-(5 + i) .. 3 + i}``;
balancing initial total ``100 + 10 i``, the same 10 per step in all. So A and B are exactly
the two-objective benchmark's and only the extra objectives are new.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.environments.balancing import BalancingUnboundedObjectives
from workers.environments.base import Action
from workers.environments.multiobjective_homeostasis import MultiObjectiveHomeostasis

NAMES = "ABCD"


def homeostasis_defaults(n: int) -> dict[str, Any]:
    names = NAMES[:n]
    return {
        "targets": {o: 100 + 10 * i for i, o in enumerate(names, 1)},
        "hysteresis": {o: 10 + i for i, o in enumerate(names, 1)},
        "noise_ranges": {o: (-(5 + i), 3 + i) for i, o in enumerate(names, 1)},
    }


class _ManyHomeostasis(MultiObjectiveHomeostasis):
    objective_count: ClassVar[int] = 3

    def __init__(
        self,
        seed: int = 1,
        noise_trace: Sequence[Mapping[str, float]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            seed, noise_trace, **(homeostasis_defaults(self.objective_count) | options)
        )


class MultiObjectiveHomeostasis3(_ManyHomeostasis):
    name: ClassVar[str] = "multiobjective-homeostasis-3"
    objective_count: ClassVar[int] = 3


class MultiObjectiveHomeostasis4(_ManyHomeostasis):
    name: ClassVar[str] = "multiobjective-homeostasis-4"
    objective_count: ClassVar[int] = 4


class _ManyBalancing(BalancingUnboundedObjectives):
    objective_count: ClassVar[int] = 3

    def __init__(
        self,
        seed: int = 1,
        noise_trace: Sequence[Mapping[str, float]] | None = None,
        **options: Any,
    ) -> None:
        totals = {o: 100 + 10 * i for i, o in enumerate(NAMES[: self.objective_count], 1)}
        super().__init__(seed, noise_trace, **({"initial_totals": totals} | options))

    def reference_action(self) -> Action:
        """Water-filling: each of the ``max_total`` units to the currently lowest total."""
        totals = dict(self.totals)
        action = {o: 0 for o in self.names}
        for _ in range(self.max_total):
            low = min(self.names, key=lambda o: (totals[o], self.names.index(o)))
            action[low] += 1
            totals[low] += 1
        return action


class Balancing3(_ManyBalancing):
    name: ClassVar[str] = "balancing-unbounded-objectives-3"
    objective_count: ClassVar[int] = 3


class Balancing4(_ManyBalancing):
    name: ClassVar[str] = "balancing-unbounded-objectives-4"
    objective_count: ClassVar[int] = 4
