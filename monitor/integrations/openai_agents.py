"""OpenAI Agents SDK: run hooks, a tool guardrail and savepoint ``RunState`` restores.

Needs the ``agents`` extra (``pip install 'runaway-monitor[agents]'``). A
:class:`RunawayGuard` gives the SDK three things:

- ``guard.hooks`` (``RunHooks``): each LLM call is one step (its text and function tool
  calls, and the previous step's tool results in ``state["tool_results"]``), reported
  when the model answers, before the tools run; before each call the model's input is
  kept as the context of the step before it (the savepoints);
- ``guard.tool_guardrail`` (a tool input guardrail, put on tools with
  :meth:`RunawayGuard.protect`): a ``block`` verdict rejects the tool call, the model
  reading the reason; ``reset`` and ``stop`` raise (the SDK's tripwire) and end the run;
- ``guard.input_filter`` (``RunConfig.call_model_input_filter``): a ``remind`` verdict's
  reminder goes with the next model call.

:meth:`RunawayGuard.run` drives it: ``Runner.run``, and after a reset a ``RunState``
built from the savepoint step's context (with the reminder staged as new input, as
``RunState.add_input`` does) to resume from. :meth:`RunawayGuard.savepoint_state`
gives that state for callers that run the loop themselves (``state.to_json()`` stores it).
"""

import asyncio
import copy
import dataclasses
import inspect
from typing import Any, Literal

from agents import (
    Agent,
    FunctionTool,
    RunConfig,
    RunContextWrapper,
    RunHooks,
    Runner,
    RunResult,
    RunState,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolInputGuardrailTripwireTriggered,
)
from agents.items import ModelResponse
from agents.run_config import CallModelData, ModelInputData
from agents.run_internal.run_steps import NextStepRunAgain

from monitor.client import Monitor, StepResult
from monitor.integrations.guard import (
    AgentStep,
    EpisodeGuard,
    ObjectiveMap,
    blocked_message,
    tool_call,
)


class RunawayInterrupt(RuntimeError):
    """A ``reset`` or ``stop`` verdict ended the run (``result`` says which and why)."""

    def __init__(self, result: StepResult) -> None:
        self.result = result
        super().__init__(f"runaway-monitor: {result.verdict} ({result.reason or result.cause})")


def _step(response: ModelResponse) -> AgentStep:
    calls, texts = [], []
    for item in response.output:
        kind = getattr(item, "type", None)
        if kind == "function_call":
            calls.append(tool_call(item.name, item.arguments, item.call_id))
        elif kind == "message":
            texts += [c.text for c in item.content if getattr(c, "type", "") == "output_text"]
    return AgentStep(text="".join(texts) or None, tool_calls=calls)


class _Hooks(RunHooks[Any]):
    def __init__(self, guard: "RunawayGuard") -> None:
        self.guard = guard

    async def on_llm_start(
        self, context: Any, agent: Any, system_prompt: Any, input_items: list[Any]
    ) -> None:
        savepoints = self.guard.savepoints
        savepoints[self.guard.episode.step] = copy.deepcopy(input_items)
        while len(savepoints) > self.guard.max_savepoints:  # each holds the whole context
            del savepoints[min(savepoints)]

    async def on_llm_end(self, context: Any, agent: Any, response: ModelResponse) -> None:
        await self.guard.on_step(_step(response))

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: object) -> None:
        self.guard.tool_results[getattr(tool, "name", "tool")] = (
            result if isinstance(result, str | int | float | bool | None) else str(result)
        )


class RunawayGuard:
    """One agent run (one episode) watched by the monitor; see the module docstring."""

    def __init__(
        self,
        monitor: Monitor,
        *,
        register: dict[str, Any] | None = None,
        objective_map: ObjectiveMap | None = None,
        unreachable: Literal["raise", "continue"] = "raise",
        max_savepoints: int = 256,
    ) -> None:
        self.max_savepoints = max_savepoints
        self.episode = EpisodeGuard(
            monitor, register=register, objective_map=objective_map, unreachable=unreachable
        )
        self.savepoints: dict[int, list[Any]] = {}  # step -> the model input after it
        self.tool_results: dict[str, Any] = {}
        self.verdicts: dict[str, StepResult] = {}  # tool call id -> its step's verdict
        self.interrupt: StepResult | None = None
        self._reminder: str | None = None
        self.hooks = _Hooks(self)
        self.tool_guardrail = ToolInputGuardrail(self._check_tool, name="runaway-monitor")

    def protect(self, *tools: FunctionTool) -> list[FunctionTool]:
        """Put the guardrail on these tools (in place); the tools, for ``Agent(tools=...)``."""
        for t in tools:
            t.tool_input_guardrails = [*(t.tool_input_guardrails or []), self.tool_guardrail]
        return list(tools)

    async def on_step(self, step: AgentStep) -> StepResult:
        if self.tool_results:
            step.state = {**(step.state or {}), "tool_results": self.tool_results}
            self.tool_results = {}
        result = await asyncio.to_thread(self.episode.report, step)
        for call in step.tool_calls:
            self.verdicts[str(call.get("id"))] = result
        if result.remind and result.reminder:
            self._reminder = result.reminder
        if (result.reset or result.stop) and not step.tool_calls:
            self.interrupt = result
            raise RunawayInterrupt(result)  # nothing for the guardrail to stop: end here
        return result

    async def _check_tool(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        result = self.verdicts.pop(data.context.tool_call_id, None)
        if result is None or result.verdict in ("continue", "remind"):
            return ToolGuardrailFunctionOutput.allow()
        if result.block:
            return ToolGuardrailFunctionOutput.reject_content(blocked_message(result), result)
        self.interrupt = result  # reset or stop
        return ToolGuardrailFunctionOutput.raise_exception(output_info=result)

    def input_filter(self, data: CallModelData[Any]) -> ModelInputData:
        reminder, self._reminder = self._reminder, None
        if reminder is None:
            return data.model_data
        extra = [{"role": "user", "content": reminder}]
        return ModelInputData(
            input=[*data.model_data.input, *extra], instructions=data.model_data.instructions
        )

    def _composed_filter(self, user_filter: Any) -> Any:
        """The reminder first, then the caller's own ``call_model_input_filter``, if any."""

        async def composed(data: CallModelData[Any]) -> ModelInputData:
            data = dataclasses.replace(data, model_data=self.input_filter(data))
            if user_filter is None:
                return data.model_data
            out = user_filter(data)
            return await out if inspect.isawaitable(out) else out

        return composed

    def savepoint_state(
        self, agent: Agent[Any], step: int, reminder: str | None = None, max_turns: int = 10
    ) -> RunState[Any]:
        """A ``RunState`` holding the context as of ``step``, ready for ``Runner.run``."""
        if step not in self.savepoints:
            raise LookupError(f"no savepoint of step {step} in this run")
        state: RunState[Any] = RunState(
            RunContextWrapper(context=None),
            copy.deepcopy(self.savepoints[step]),
            agent,
            max_turns=max_turns,
        )
        state._current_step = NextStepRunAgain()  # resumable: the next model call comes next
        if reminder:
            state.add_input(reminder)
        return state

    async def run(
        self,
        agent: Agent[Any],
        input: Any,
        *,
        run_config: RunConfig | None = None,
        max_resets: int = 5,
        **kwargs: Any,
    ) -> RunResult:
        """``Runner.run`` with the hooks and the reminder filter; resets resume from the
        savepoint's ``RunState``. A stop verdict raises :class:`RunawayInterrupt`."""
        config = run_config or RunConfig()
        config = dataclasses.replace(
            config, call_model_input_filter=self._composed_filter(config.call_model_input_filter)
        )
        for _ in range(max_resets + 1):
            self.interrupt = None
            try:
                return await Runner.run(agent, input, hooks=self.hooks, run_config=config, **kwargs)
            except (ToolInputGuardrailTripwireTriggered, RunawayInterrupt):
                verdict = self.interrupt
                if verdict is None:
                    raise  # another guardrail's tripwire
                if verdict.stop:
                    raise RunawayInterrupt(verdict) from None
                input = self.savepoint_state(agent, verdict.savepoint_step or 0, verdict.reminder)
        raise RunawayInterrupt(verdict)
