"""The recovery wrapper for any solver: each model call is a monitored step.

``monitored_solver(inner)`` hands ``inner`` a ``generate`` that, after each model call,
reports the step (the answer's text and tool calls) to the monitor, waits for its
verdict and applies it to ``TaskState.messages``: a savepoint is the length of the
messages after a step judged safe, ``reset`` cuts them back to it (and adds the
reminder), ``remind`` adds the reminder, ``stop`` ends the sample (``completed``). The
wrapper publishes its sample's steps itself, so the hooks skip that sample's events.
The agent wrapper (:mod:`.agent_wrapper`) shares :class:`MessagesTarget` and
:func:`report_step`.
"""

from typing import Any, Protocol

from inspect_ai.model import ChatMessage, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState

from monitor.api.verdicts import Answer
from monitor.integrations.inspect.episodes import model_step
from monitor.integrations.inspect.recovery import LINK_KEY, EpisodeLink, link_episode


class HasMessages(Protocol):
    """``TaskState`` or ``AgentState``: what a recovery acts on."""

    messages: list[ChatMessage]


class MessagesTarget:
    """Savepoints over ``state.messages``: step -> the messages' length after it."""

    def __init__(self, state: HasMessages) -> None:
        self.state = state
        self.lengths: dict[int, int] = {0: len(state.messages)}
        self.safe = 0

    def after_step(self, step: int) -> None:
        self.lengths[step] = len(self.state.messages)

    def confirm(self, savepoint_step: int) -> None:
        if savepoint_step > self.safe and savepoint_step in self.lengths:
            self.safe = savepoint_step
            for old in [s for s in self.lengths if s < savepoint_step]:
                del self.lengths[old]

    def reset(self, savepoint_step: int, reminder: str | None) -> int:
        kept = [s for s in self.lengths if s <= savepoint_step] or [min(self.lengths)]
        length = self.lengths[max(kept)]
        dropped = len(self.state.messages) - length
        del self.state.messages[length:]
        for later in [s for s in self.lengths if s > max(kept)]:
            del self.lengths[later]
        if reminder:
            self.state.messages.append(ChatMessageUser(content=reminder))
        return dropped

    def remind(self, reminder: str | None) -> None:
        if reminder:
            self.state.messages.append(ChatMessageUser(content=reminder))


class _Event:
    """A model call's output in the shape :func:`model_step` reads from a ModelEvent."""

    def __init__(self, output: Any) -> None:
        self.output = output


async def report_step(link: EpisodeLink, output: Any) -> tuple[int, Answer | None]:
    """Publish a model call's output as the episode's next step and wait for its verdict:
    the step and the verdict (None when the monitor is offline or late, counted)."""
    step = link.episode.steps + 1
    link.expect(step)
    if not await link.connect():
        link.episode.steps = step
        return step, None
    await link.publish(model_step(link.episode_id, step, _Event(output)))
    return step, await link.verdict(step)


async def own_link(sample_uuid: str) -> EpisodeLink:
    """The sample's link, publishing the steps itself (the hooks skip its events)."""
    link = await link_episode(sample_uuid)
    link.episode.published_by_hooks = False
    link.own = True
    return link


def monitored_solver(inner: Solver) -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        link = await own_link(state.uuid)
        target = MessagesTarget(state)

        async def checked(st: TaskState, *args: Any, **kwargs: Any) -> TaskState:
            st = await generate(st, *args, **kwargs)
            await _check(link, target, st)
            return st

        try:
            return await inner(state, checked)
        finally:
            state.store.set(LINK_KEY, link.summary())
            await link.close(link.episode.steps)

    return solve


async def _check(link: EpisodeLink, target: MessagesTarget, st: TaskState) -> None:
    step, answer = await report_step(link, st.output)
    target.after_step(step)
    if await link.apply(answer, target) == "stop":
        st.completed = True
