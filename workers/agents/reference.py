"""The reference agent: always plays the environment's optimal policy (the control arm)."""

from workers.agents.base import AgentContext, Reply


class ReferenceAgent:
    """Answers ``env.format_action(env.reference_action())``; no I/O, no randomness."""

    async def act(self, context: AgentContext) -> Reply:
        env = context.env
        return Reply(text=env.format_action(env.reference_action()))

    async def aclose(self) -> None:
        return None
