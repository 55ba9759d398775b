"""The built-in environments and the one place that builds them by name."""

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from workers.environments.balancing import BalancingUnboundedObjectives
from workers.environments.balancing_noise import BalancingNoise
from workers.environments.base import Action, Environment, InvalidAction, Transition
from workers.environments.catalog import ENVIRONMENT_NAMES, OBJECTIVES
from workers.environments.homeostasis import Homeostasis
from workers.environments.multiobjective_homeostasis import MultiObjectiveHomeostasis
from workers.environments.multiobjective_homeostasis_shocks import (
    MultiObjectiveHomeostasisShocks,
)
from workers.environments.sustainability import Sustainability
from workers.environments.variants import (
    Balancing3,
    Balancing4,
    MultiObjectiveHomeostasis3,
    MultiObjectiveHomeostasis4,
)

ENVIRONMENTS: dict[str, type[Environment]] = {
    cls.name: cls
    for cls in (
        Sustainability,
        Homeostasis,
        MultiObjectiveHomeostasis,
        BalancingUnboundedObjectives,
        BalancingNoise,
        MultiObjectiveHomeostasisShocks,
        MultiObjectiveHomeostasis3,
        MultiObjectiveHomeostasis4,
        Balancing3,
        Balancing4,
    )
}
assert set(ENVIRONMENTS) == set(ENVIRONMENT_NAMES), "catalog.py and the classes disagree"


@functools.cache
def environment_options(name: str) -> tuple[str, ...]:
    """The keyword options an environment accepts (besides ``seed`` and ``noise_trace``).

    A variant that adds options to its parent's takes ``**options`` and passes them on,
    so the options are gathered along the class hierarchy up to the first ``__init__``
    without ``**``. Cached: ``inspect.signature`` costs more than building the environment.
    """
    levels: list[list[str]] = []  # the class's own options first, then its parents'
    for klass in _class(name).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        levels.append([p.name for p in params if p.kind is p.KEYWORD_ONLY])
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return tuple(dict.fromkeys(n for level in reversed(levels) for n in level))


def create_environment(
    name: str,
    *,
    seed: int = 1,
    noise_trace: Sequence[Mapping[str, float]] | None = None,
    **options: Any,
) -> Environment:
    """Build a fresh environment; ``ValueError`` names an unknown environment or option."""
    cls = _class(name)
    allowed = environment_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for environment {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return cls(seed, noise_trace, **options)


def _class(name: str) -> type[Environment]:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown environment {name!r}; known: {', '.join(ENVIRONMENT_NAMES)}"
        ) from None


__all__ = [
    "ENVIRONMENTS",
    "ENVIRONMENT_NAMES",
    "OBJECTIVES",
    "Action",
    "Environment",
    "InvalidAction",
    "Transition",
    "create_environment",
    "environment_options",
]
