"""The recovery wrapper for any Inspect agent: each of its model calls is a monitored step.

An agent calls the model itself (``react()`` and most agents through ``get_model()``, the
eval's model), so there is no ``generate`` to hand it, as the solver wrapper does.
``monitored_agent(inner)`` runs ``inner`` with the eval's model replaced, for that run
only, by one whose ``generate`` reports each answer (text and tool calls) to the monitor
and waits for its verdict before the agent sees the answer. The verdict is applied to
the agent's ``AgentState.messages`` just before its next model call, once the agent has
added the answer and its tool results (so a cut never separates a tool call from its
result), or when the agent returns: a savepoint is the messages' length then, ``reset``
cuts them back to a savepoint and adds the reminder, ``remind`` adds the reminder, and
``stop`` ends the agent at once with that answer, its tool calls not run, and the sample
too (as the solver wrapper's ``stop`` does). The savepoint bookkeeping is the solver
wrapper's (:class:`~.wrapper.MessagesTarget`, :func:`~.wrapper.report_step`), the verdicts
the link's (:meth:`~.recovery.EpisodeLink.apply`).

What it sees: the calls made through the eval's model (``get_model()`` with no model
named) while the agent runs, sub-agents' included. A verdict is applied at a call whose
input is the agent's own message list (react's), not at a sub-agent's call on its copy,
and any still waiting when the agent returns are applied then.
"""

import uuid
from typing import Any

from inspect_ai.agent import Agent, AgentState
from inspect_ai.model import Model, ModelOutput, get_model
from inspect_ai.model._model import active_model_context_var
from inspect_ai.solver._task_state import sample_state

from monitor.api.verdicts import Answer
from monitor.integrations.inspect.recovery import LINK_KEY, EpisodeLink
from monitor.integrations.inspect.wrapper import MessagesTarget, own_link, report_step


class AgentStopped(Exception):
    """The monitor said ``stop`` to an answer: the agent's run ends (with that answer when
    it was the agent's own; None when a sub-agent's stop is raised again)."""

    def __init__(self, output: ModelOutput | None) -> None:
        super().__init__("runaway-monitor: stop")
        self.output = output


def _stops(answer: Answer | None) -> bool:
    """A plain ``stop`` verdict (what :meth:`EpisodeLink.apply` answers ``stop`` to)."""
    return answer is not None and answer[1] is None and answer[0].verdict == "stop"


class AgentRecovery:
    """One agent run's steps, their verdicts applied to its messages between model calls."""

    def __init__(self, link: EpisodeLink, state: AgentState) -> None:
        self.link = link
        self.state = state
        # made at the first call: an agent adds its system prompt before it (react does)
        self.target: MessagesTarget | None = None
        self.pending: list[tuple[int, Answer | None]] = []  # steps the agent is taking in
        self.stopped = False

    async def before_call(self, messages: Any) -> None:
        if self.stopped:  # a sub-agent's stop, caught by the tool call that ran it
            raise AgentStopped(None)
        if messages is self.state.messages:
            await self.settle()

    async def after_call(self, output: ModelOutput) -> None:
        step, answer = await report_step(self.link, output)
        self.pending.append((step, answer))
        if _stops(answer):
            self.stopped = True
            raise AgentStopped(output)

    def adopt(self, state: AgentState) -> None:
        """The agent returned this state (not always the one it was given)."""
        self.state = state
        if self.target is not None:
            self.target.state = state

    async def settle(self) -> str:
        """Apply the verdicts of the steps taken in since the last call; the last action."""
        if self.target is None:
            self.target = MessagesTarget(self.state)
        action = "continue"
        for step, answer in self.pending:
            self.target.after_step(step)
            action = await self.link.apply(answer, self.target)
        self.pending.clear()
        return action


class MonitoredModel(Model):
    """The eval's model as the wrapped agent sees it: each call goes through the recovery."""

    def __init__(self, model: Model, recovery: AgentRecovery) -> None:
        vars(self).update(vars(model))  # the same API client, config and role
        self.runaway_recovery = recovery

    async def generate(self, input: Any, *args: Any, **kwargs: Any) -> ModelOutput:
        await self.runaway_recovery.before_call(input)
        output = await super().generate(input, *args, **kwargs)
        await self.runaway_recovery.after_call(output)
        return output


def monitored_agent(inner: Agent) -> Agent:
    async def execute(state: AgentState) -> AgentState:
        running = sample_state()
        link = await own_link(running.uuid if running is not None else uuid.uuid4().hex)
        recovery = AgentRecovery(link, state)
        token = active_model_context_var.set(MonitoredModel(get_model(), recovery))
        try:
            return await _run(inner, state, recovery)
        finally:
            active_model_context_var.reset(token)
            if running is not None:
                running.store.set(LINK_KEY, link.summary())
            await link.close(link.episode.steps)

    return execute


async def _run(inner: Agent, state: AgentState, recovery: AgentRecovery) -> AgentState:
    try:
        state = await inner(state)
    except AgentStopped as stopped:
        if stopped.output is not None:
            state.output = stopped.output
            if stopped.output.choices:
                state.messages.append(stopped.output.message)
    recovery.adopt(state)
    if await recovery.settle() == "stop":
        _end_sample()
    return state


def _end_sample() -> None:
    running = sample_state()
    if running is not None:
        running.completed = True
