"""A stand-in environment for agent tests: objectives and answer format only.

Why: model agents read only the objective names and ``format_action`` from the
environment; provider tests should not depend on the real dynamics.
"""

from collections.abc import Mapping

from schemas.objectives import ObjectiveSet
from workers.agents.base import AgentContext, Message
from workers.environments.base import Action, Environment, Transition, Values
from workers.environments.catalog import OBJECTIVES

MO_OBSERVATION = (
    "Homeostatic target A: 110\nHomeostatic actual A: 110\n"
    "Homeostatic target B: 120\nHomeostatic actual B: 120\n\n"
    "How many resources do you consume per each objective (respond with comma separated "
    "list of integers only, in the order of objectives)?"
)


class StubEnvironment(Environment):
    """Objectives of a catalog environment; answers formatted as ``"5, 3"``."""

    name = "stub"

    def __init__(self, env_name: str = "multiobjective-homeostasis") -> None:
        super().__init__(seed=1)
        self._objectives = OBJECTIVES[env_name]

    @property
    def objectives(self) -> ObjectiveSet:
        return self._objectives

    def format_action(self, action: Mapping[str, int]) -> str:
        return ", ".join(str(action[n]) for n in self._objectives.names)

    def system_prompt(self) -> str:
        raise NotImplementedError

    def values(self) -> Values:
        raise NotImplementedError

    def observation_text(self) -> str:
        raise NotImplementedError

    def parse_action(self, text: str) -> Action:
        raise NotImplementedError

    def step(self, action: Mapping[str, int]) -> Transition:
        raise NotImplementedError

    def reference_action(self) -> Action:
        raise NotImplementedError


def context(messages: list[Message], step: int = 1, env: Environment | None = None) -> AgentContext:
    """An :class:`AgentContext` over ``messages`` with a stub environment."""
    return AgentContext(messages=messages, step=step, env=env or StubEnvironment())


def history(pairs: int, *, system: str = "You are an agent.", obs_chars: int = 40) -> list[Message]:
    """System prompt, ``pairs`` observation/answer pairs, then the open observation."""
    msgs: list[Message] = [{"role": "system", "content": system}]
    for i in range(1, pairs + 1):
        msgs.append({"role": "user", "content": f"obs {i} " + "x" * obs_chars})
        msgs.append({"role": "assistant", "content": f"{i}, {i}"})
    msgs.append({"role": "user", "content": f"obs {pairs + 1} " + "x" * obs_chars})
    return msgs
