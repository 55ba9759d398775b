"""LangChain 1.x / LangGraph: an ``AgentMiddleware`` that puts the monitor beside an agent.

Needs the ``langchain`` extra (``pip install 'runaway-monitor[langchain]'``). Each model
call is one step (its text and tool calls, and the results of the previous step's tools
in ``state["tool_results"]``), reported before its tools run, so the verdict applies to
them:

- ``remind``: the reminder goes into the thread as a user message before the next model
  call (the context is kept);
- ``block``: the step's tool calls are not run; each answers with the reason;
- ``stop``: the run ends (each pending tool call answers with the reason);
- ``reset``: the run ends and :meth:`RunawayMiddleware.invoke` forks the thread from the
  checkpoint of the savepoint step (LangGraph time travel: the state history of any
  checkpointer), with the reminder as a user message, and runs on from there.

The step number is kept in the graph state (``runaway_step``), so every checkpoint says
which step it follows and a savepoint maps to a checkpoint whatever the checkpointer.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.config import get_config
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from monitor.client import Monitor, StepResult
from monitor.integrations.guard import (
    AgentStep,
    EpisodeGuard,
    ObjectiveMap,
    blocked_message,
    tool_call,
)

StateMap = Callable[[dict[str, Any]], dict[str, Any] | None]


class RunawayState(AgentState[Any]):
    """The agent state plus the monitor's step number of the last model call."""

    runaway_step: NotRequired[int]


@dataclass(frozen=True)
class PendingReset:
    savepoint_step: int
    reminder: str | None


def _thread_id() -> str:
    return str(get_config().get("configurable", {}).get("thread_id", "default"))


def _text(message: AIMessage) -> str | None:
    content = message.content
    if isinstance(content, str):
        return content or None
    parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
    return "".join(parts) or None


def _ends_run(message: AIMessage, why: str) -> dict[str, Any]:
    """End the run now; each pending tool call answers (the thread stays valid)."""
    answers = [
        ToolMessage(content=why, tool_call_id=c["id"], name=c["name"], status="error")
        for c in message.tool_calls
    ]
    return {"messages": answers, "jump_to": "end"}


class RunawayMiddleware(AgentMiddleware[RunawayState, Any, Any]):
    """Reports each model call as a step and applies the verdict (one episode per thread).

    ``register``: the body of ``POST /v1/episodes`` (e.g. ``{"objectives": [...],
    "policy": {...}, "labels": {...}}``); ``objective_map``: a step's observation and
    action, when the agent's numbers map to objectives; ``state_map``: what of the agent
    state to send as the step's ``state``; ``unreachable``: ``raise`` or ``continue`` when
    the sidecar cannot be reached (see :class:`EpisodeGuard`).
    """

    state_schema = RunawayState

    def __init__(
        self,
        monitor: Monitor,
        *,
        register: dict[str, Any] | None = None,
        objective_map: ObjectiveMap | None = None,
        state_map: StateMap | None = None,
        unreachable: Literal["raise", "continue"] = "raise",
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.unreachable: Literal["raise", "continue"] = unreachable
        self.register = register
        self.objective_map = objective_map
        self.state_map = state_map
        self.guards: dict[str, EpisodeGuard] = {}
        self.resets: dict[str, PendingReset] = {}
        self.stopped: dict[str, StepResult] = {}
        self._reminders: dict[str, str] = {}
        self._blocked: dict[str, str] = {}  # tool call id -> the answer it gets
        self._results: dict[str, dict[str, Any]] = {}  # thread -> {tool name: result}

    def guard(self, thread_id: str) -> EpisodeGuard:
        if thread_id not in self.guards:
            self.guards[thread_id] = EpisodeGuard(
                self.monitor,
                register=self.register,
                objective_map=self.objective_map,
                unreachable=self.unreachable,
            )
        return self.guards[thread_id]

    # hooks ------------------------------------------------------------------------------
    def before_model(self, state: RunawayState, runtime: Any) -> dict[str, Any] | None:
        reminder = self._reminders.pop(_thread_id(), None)
        return {"messages": [HumanMessage(reminder)]} if reminder else None

    async def abefore_model(self, state: RunawayState, runtime: Any) -> dict[str, Any] | None:
        return self.before_model(state, runtime)

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: RunawayState, runtime: Any) -> dict[str, Any] | None:
        message = state["messages"][-1]
        if not isinstance(message, AIMessage):
            return None
        thread = _thread_id()
        return self._apply(thread, message, self.guard(thread).report(self._step(thread, state)))

    @hook_config(can_jump_to=["end"])
    async def aafter_model(self, state: RunawayState, runtime: Any) -> dict[str, Any] | None:
        message = state["messages"][-1]
        if not isinstance(message, AIMessage):
            return None
        thread = _thread_id()
        step = self._step(thread, state)
        result = await asyncio.to_thread(self.guard(thread).report, step)
        return self._apply(thread, message, result)

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]
    ) -> ToolMessage | Command[Any]:
        blocked = self._blocked_answer(request)
        if blocked is not None:
            return blocked
        out = handler(request)
        self._keep_result(request, out)
        return out

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> ToolMessage | Command[Any]:
        blocked = self._blocked_answer(request)
        if blocked is not None:
            return blocked
        out = await handler(request)
        self._keep_result(request, out)
        return out

    # verdicts ---------------------------------------------------------------------------
    def _step(self, thread: str, state: RunawayState) -> AgentStep:
        message = state["messages"][-1]
        calls = [tool_call(c["name"], c["args"], c.get("id")) for c in message.tool_calls]
        extra = dict(self.state_map(dict(state)) or {}) if self.state_map else {}
        results = self._results.pop(thread, None)
        if results:
            extra["tool_results"] = results
        return AgentStep(text=_text(message), tool_calls=calls, state=extra or None)

    def _apply(self, thread: str, message: AIMessage, result: StepResult) -> dict[str, Any]:
        update: dict[str, Any] = {"runaway_step": self.guard(thread).step}
        if result.remind and result.reminder:
            self._reminders[thread] = result.reminder
        elif result.block:
            for c in message.tool_calls:
                self._blocked[c["id"]] = blocked_message(result)
        elif result.stop:
            self.stopped[thread] = result
            update.update(_ends_run(message, f"Run stopped by runaway-monitor: {result.reason}"))
        elif result.reset:
            self.resets[thread] = PendingReset(result.savepoint_step or 0, result.reminder)
            update.update(_ends_run(message, "Step undone by runaway-monitor (reset)"))
        return update

    def _blocked_answer(self, request: ToolCallRequest) -> ToolMessage | None:
        call = request.tool_call
        why = self._blocked.pop(call.get("id") or "", None)
        if why is None:
            return None
        return ToolMessage(content=why, tool_call_id=call["id"], name=call["name"], status="error")

    def _keep_result(self, request: ToolCallRequest, out: Any) -> None:
        if isinstance(out, ToolMessage):
            content = out.content if isinstance(out.content, str) else str(out.content)
            self._results.setdefault(_thread_id(), {})[request.tool_call["name"]] = content

    # time travel ------------------------------------------------------------------------
    def invoke(self, agent: Any, input: Any, config: dict[str, Any], *, max_resets: int = 5) -> Any:
        """``agent.invoke``, then fork from the savepoint after each reset verdict."""
        result = agent.invoke(input, config)
        thread = str(config["configurable"]["thread_id"])
        for _ in range(max_resets):
            reset = self.resets.pop(thread, None)
            if reset is None:
                break
            fork = savepoint_config(agent, config, reset.savepoint_step)
            resume = {"messages": [HumanMessage(reset.reminder)]} if reset.reminder else None
            result = agent.invoke(resume, fork)
        return result

    async def ainvoke(
        self, agent: Any, input: Any, config: dict[str, Any], *, max_resets: int = 5
    ) -> Any:
        result = await agent.ainvoke(input, config)
        thread = str(config["configurable"]["thread_id"])
        for _ in range(max_resets):
            reset = self.resets.pop(thread, None)
            if reset is None:
                break
            fork = await asyncio.to_thread(savepoint_config, agent, config, reset.savepoint_step)
            resume = {"messages": [HumanMessage(reset.reminder)]} if reset.reminder else None
            result = await agent.ainvoke(resume, fork)
        return result


def savepoint_config(agent: Any, config: dict[str, Any], savepoint_step: int) -> dict[str, Any]:
    """The checkpoint config of the thread as of ``savepoint_step``.

    Walks the current branch back from its head: the newest checkpoint that follows the
    savepoint step and is not a model answer, i.e. the state from which the next model
    call was made (its tools' results in, the next answer not yet).
    """
    snapshot = agent.get_state({"configurable": dict(config["configurable"])})
    while snapshot is not None and snapshot.config:
        values = snapshot.values or {}
        messages = values.get("messages") or []
        if (
            values.get("runaway_step", 0) == savepoint_step
            and messages
            and not isinstance(messages[-1], AIMessage)
        ):
            return snapshot.config
        if snapshot.parent_config is None:
            break
        snapshot = agent.get_state(snapshot.parent_config)
    raise LookupError(f"no checkpoint of step {savepoint_step} on this thread")
