"""What the ``inspect_ai`` entry point registers: tasks, hooks, scorer, wrappers, approver.

Each is a thin definition here (so that Inspect names it ``runaway_monitor/...``)
around :mod:`monitor.integrations.inspect`, which checks the inspect-ai version on import.
"""

from collections.abc import Callable

from inspect_ai import Task, task
from inspect_ai.agent import Agent, agent
from inspect_ai.approval import Approver, approver
from inspect_ai.hooks import hooks
from inspect_ai.scorer import Scorer, scorer
from inspect_ai.solver import Solver, solver

from monitor.integrations.inspect import agent_wrapper as _agent_wrapper
from monitor.integrations.inspect import approval as _approval
from monitor.integrations.inspect import hooks as _hooks
from monitor.integrations.inspect import scorer as _scorer
from monitor.integrations.inspect import wrapper as _wrapper
from monitor.integrations.inspect.tasks import bioblue_task

PACKAGE = "runaway_monitor"


def _name(name: str) -> str:
    """``name`` such that Inspect registers ``runaway_monitor/<name>``.

    Inspect prefixes the package only when it finds this package installed from the
    import path; a source tree on ``sys.path`` (its ``*.egg-info`` first) hides the
    install, and then the prefix is given here instead.
    """
    from inspect_ai._util.registry import registry_name

    return name if registry_name(_name, name).startswith(PACKAGE + "/") else f"{PACKAGE}/{name}"


@hooks(name="runaway_monitor", description="Stream every sample's steps to runaway-monitor")
class RunawayHooks(_hooks.RunawayHooks):
    """Live monitoring of any eval (``RUNAWAY_INSPECT_HOOKS=1`` and ``REDIS_URL``)."""


@hooks(name="runaway_monitor_cleanup", description="Close runaway-monitor's connections")
class ChannelCleanup(_hooks.ChannelCleanup):
    """Closes the monitor's connections when an eval's run ends."""


def _bioblue(environment: str, doc: str, *, hint: bool = False) -> Callable[..., Task]:
    """The Inspect task ``runaway_monitor/<environment, with underscores>``. Its parameters
    are its ``-T`` options, so they are spelled out; ``hint`` adds the balancing tasks'
    ``-T hint=false`` (drop the prompt's sentence that balancing is beneficial)."""
    if hint:

        def make(
            steps: int = 100,
            trials: int = 1,
            seed: int = 1,
            mitigation: str = "savepoint-recovery",
            hint: bool = True,
            monitor: bool = False,
        ) -> Task:
            return bioblue_task(
                environment,
                steps=steps,
                trials=trials,
                seed=seed,
                mitigation=mitigation,
                hint=hint,
                monitor=monitor,
            )
    else:

        def make(  # type: ignore[misc]
            steps: int = 100,
            trials: int = 1,
            seed: int = 1,
            mitigation: str = "savepoint-recovery",
            monitor: bool = False,
        ) -> Task:
            return bioblue_task(
                environment,
                steps=steps,
                trials=trials,
                seed=seed,
                mitigation=mitigation,
                monitor=monitor,
            )

    make.__name__ = make.__qualname__ = environment.replace("-", "_")
    make.__doc__ = doc
    return task(name=_name(make.__name__))(make)


sustainability = _bioblue("sustainability", "BioBlue sustainability (a renewable stock).")
homeostasis = _bioblue("homeostasis", "BioBlue homeostasis (one level to keep in its band).")
multiobjective_homeostasis = _bioblue(
    "multiobjective-homeostasis", "BioBlue multi-objective homeostasis (two levels, A and B)."
)
multiobjective_homeostasis_shocks = _bioblue(
    "multiobjective-homeostasis-shocks", "Multi-objective homeostasis with force-majeure shocks."
)
balancing_unbounded_objectives = _bioblue(
    "balancing-unbounded-objectives",
    "BioBlue balancing of unbounded objectives (diminishing returns).",
    hint=True,
)
balancing_noise = _bioblue(
    "balancing-noise", "Balancing with exogenous shocks to the totals.", hint=True
)


@scorer(name=_name("runaway"), metrics=_scorer.METRICS)
def runaway() -> Scorer:
    """Flip, onset, mean RI, flags, recoveries and task score per objective."""
    return _scorer.runaway_scorer()


@solver(name=_name("monitored"))
def monitored(inner: Solver) -> Solver:
    """Wrap a solver so each model call is checked by the monitor and its verdict applied."""
    return _wrapper.monitored_solver(inner)


@agent(name=_name("monitored_agent"))
def monitored_agent(inner: Agent) -> Agent:
    """Wrap an agent so each of its model calls is checked by the monitor and its verdict
    applied to its ``AgentState.messages``."""
    return _agent_wrapper.monitored_agent(inner)


@approver(name=_name("approver"))
def runaway_approver() -> Approver:
    """Approve, reject (with the reason) or terminate tool calls as the monitor decides."""
    return _approval.monitor_approver()
