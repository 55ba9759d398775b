"""Agents, built by kind from an :class:`~schemas.episode.AgentSpec`.

The registry is a plain dict of factories so that model agents (OpenAI, Anthropic, ...)
can be added with :func:`register_agent` without touching the scripted ones.
"""

import functools
import inspect
from collections.abc import Callable

from schemas.episode import AgentSpec
from workers.agents.base import Agent, AgentContext, Message, Reply, Usage
from workers.agents.drifting import MODES, DriftingAgent
from workers.agents.reference import ReferenceAgent
from workers.agents.replay import ReplayAgent
from workers.recordings import Recording, read_tsv_shared

AgentFactory = Callable[[AgentSpec, int, Recording | None], Agent]


def _reference(spec: AgentSpec, seed: int, recording: Recording | None) -> Agent:
    _check_options(spec, ())
    return ReferenceAgent()


@functools.cache
def _drifting_options() -> tuple[str, ...]:
    """DriftingAgent's options (cached: ``inspect.signature`` runs once, not per episode)."""
    return tuple(p for p in inspect.signature(DriftingAgent).parameters if p != "seed")


def _drifting(spec: AgentSpec, seed: int, recording: Recording | None) -> Agent:
    _check_options(spec, _drifting_options())
    return DriftingAgent(seed=seed, **spec.options)


def _replay(spec: AgentSpec, seed: int, recording: Recording | None) -> Agent:
    _check_options(spec, ("source",))
    if recording is None:
        source = spec.options.get("source")
        if not source:
            raise ValueError("a replay agent needs a recording or the option 'source'")
        recording = read_tsv_shared(source)
    return ReplayAgent(recording)


AGENT_FACTORIES: dict[str, AgentFactory] = {
    "reference": _reference,
    "drifting": _drifting,
    "replay": _replay,
}


def register_agent(kind: str, factory: AgentFactory) -> None:
    """Add an agent kind (model clients live in their own modules and register here)."""
    AGENT_FACTORIES[kind] = factory


def create_agent(spec: AgentSpec, *, seed: int, recording: Recording | None = None) -> Agent:
    """Build the agent ``spec`` names; ``ValueError`` for an unknown kind or option."""
    try:
        factory = AGENT_FACTORIES[spec.kind]
    except KeyError:
        known = ", ".join(sorted(AGENT_FACTORIES))
        raise ValueError(f"unknown agent kind {spec.kind!r}; known: {known}") from None
    return factory(spec, seed, recording)


def _check_options(spec: AgentSpec, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(spec.options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for agent kind {spec.kind!r}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )


__all__ = [
    "AGENT_FACTORIES",
    "MODES",
    "Agent",
    "AgentContext",
    "AgentFactory",
    "DriftingAgent",
    "Message",
    "ReferenceAgent",
    "ReplayAgent",
    "Reply",
    "Usage",
    "create_agent",
    "register_agent",
]
