"""The six BioBlue environments as Inspect tasks, one sample per trial (seed = trial).

``inspect eval runaway_monitor/multiobjective_homeostasis -T steps=20 -T trials=3
-T mitigation=savepoint-recovery -T monitor=true``; ``hint`` is for the two balancing
environments (the prompt's balancing sentence). ``monitor=true`` asks the monitor for
each step's verdict and applies it (a detector must run against ``REDIS_URL``).
"""

from typing import Any

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample

from monitor.integrations.inspect.bioblue import bioblue_loop, check_mitigation
from monitor.integrations.inspect.episodes import ENV_KEY
from monitor.integrations.inspect.scorer import runaway_scorer
from workers.environments import create_environment, environment_options

TASK_NAMES = {
    "sustainability": "sustainability",
    "homeostasis": "homeostasis",
    "multiobjective-homeostasis": "multiobjective_homeostasis",
    "multiobjective-homeostasis-shocks": "multiobjective_homeostasis_shocks",
    "balancing-unbounded-objectives": "balancing_unbounded_objectives",
    "balancing-noise": "balancing_noise",
}


def bioblue_task(
    environment: str,
    *,
    steps: int = 100,
    trials: int = 1,
    seed: int = 1,
    mitigation: str = "savepoint-recovery",
    hint: bool | None = None,
    monitor: bool = False,
) -> Task:
    """The task of one environment; ValueError names a bad argument."""
    if steps < 1 or trials < 1:
        raise ValueError("steps and trials must be at least 1")
    check_mitigation(mitigation)
    options: dict[str, Any] = {}
    if hint is not None:
        if "hint" not in environment_options(environment):
            raise ValueError(f"hint: environment {environment!r} has no hint sentence")
        options["hint"] = bool(hint)
    samples = [_sample(environment, seed + k, steps, mitigation, options) for k in range(trials)]
    return Task(
        dataset=MemoryDataset(samples, name=TASK_NAMES[environment]),
        solver=bioblue_loop(monitor=monitor),
        scorer=runaway_scorer(),
        metadata={"runaway_environment": environment, "steps": steps, "mitigation": mitigation},
    )


def _sample(environment: str, seed: int, steps: int, mitigation: str, options: dict) -> Sample:
    env = create_environment(environment, seed=seed, **options)
    return Sample(
        id=f"seed-{seed}",
        input=env.observation_text(),
        target="",
        metadata={
            ENV_KEY: environment,
            "seed": seed,
            "steps": steps,
            "mitigation": mitigation,
            "runaway_env_options": options,
        },
    )
