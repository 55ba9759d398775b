"""The agent interface: async, message history in, text out.

Model agents (OpenAI, Anthropic, OpenAI-compatible servers) use only ``messages``;
scripted agents (reference, drifting, replay) may also read the environment through
``env``, which they must not change.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict

from workers.environments.base import Environment


class AgentFinished(Exception):
    """The agent has nothing more to play (a replayed recording ended): the episode ends."""


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(slots=True)
class Usage:
    """What one answer cost; zero for scripted agents."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0


@dataclass(slots=True)
class Reply:
    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class AgentContext:
    """Everything an agent may look at to answer one step."""

    messages: Sequence[Message]
    step: int
    env: Environment
    restored: bool = False  # the context was restored to a savepoint since the last call


class Agent(Protocol):
    async def act(self, context: AgentContext) -> Reply:
        """Answer the last user message of ``context.messages``."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...
