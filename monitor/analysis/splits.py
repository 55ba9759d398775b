"""The held-out rule of corrective datasets: new environments or new seeds.

Why this rule: the dataset exists to measure whether fine-tuning removes the *tendency*
to flip, not whether it memorises the training episodes. An episode is held out when its
environment is a held-out environment **or** its seed is a held-out seed; it is training
data only when neither. So no training episode shares an environment or a seed with the
held-out set's new ones, and every held-out episode is new in at least one of the two.

Defaults (overridable): the alphabetically last environment when there are two or more,
and the highest quarter of the seeds (at least one) when there are two or more.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.analysis.results import EpisodeRecord


@dataclass(frozen=True, slots=True)
class SplitRule:
    heldout_environments: frozenset[str]
    heldout_seeds: frozenset[int]

    def is_heldout(self, record: EpisodeRecord) -> bool:
        env, seed = record.cell.get("environment"), record.cell.get("seed")
        return env in self.heldout_environments or (
            seed is not None and int(seed) in self.heldout_seeds
        )

    def describe(self) -> str:
        envs = ", ".join(sorted(self.heldout_environments)) or "none"
        seeds = ", ".join(str(s) for s in sorted(self.heldout_seeds)) or "none"
        return (
            f"held out: environment in [{envs}] or seed in [{seeds}]; "
            "training: neither (so the two never share a held-out environment or seed)"
        )


def default_rule(records: Iterable[EpisodeRecord]) -> SplitRule:
    """The default held-out environments and seeds for these episodes (see module doc)."""
    records = list(records)
    envs = sorted({str(r.cell.get("environment")) for r in records})
    seeds = sorted({int(r.cell["seed"]) for r in records if r.cell.get("seed") is not None})
    held_envs = frozenset(envs[-1:]) if len(envs) >= 2 else frozenset()
    held_seeds = (
        frozenset(seeds[-max(1, math.ceil(len(seeds) / 4)) :]) if len(seeds) >= 2 else frozenset()
    )
    return SplitRule(held_envs, held_seeds)


def subset_sizes(pool: int) -> list[int]:
    """1, 2, 4, ... below ``pool``, then ``pool`` itself (each subset holds the smaller)."""
    sizes, k = [], 1
    while k < pool:
        sizes.append(k)
        k *= 2
    return [*sizes, pool] if pool else []
