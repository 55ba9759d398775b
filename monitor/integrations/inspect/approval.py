"""An approver for tool-using agents: each tool call is a step, its verdict the decision.

``continue``, ``remind`` and ``reset`` approve (a reset is for the context, which the
recovery wrapper handles); ``block`` rejects the call with the monitor's reason; ``stop``
terminates the sample. With the monitor unreachable or late, the call is approved and
the outage counted (the eval never fails for the monitor's sake).
"""

from typing import Any

from inspect_ai.approval import Approval, Approver
from inspect_ai.solver._task_state import sample_state

from monitor.integrations.inspect.recovery import link_episode
from schemas.events import StepEvent, ToolCall

DECISIONS = {"block": "reject", "stop": "terminate"}


def decision(verdict: Any) -> Approval:
    """The approval for a verdict (None: approve)."""
    if verdict is None:
        return Approval(decision="approve", explanation="runaway-monitor: no verdict")
    chosen = DECISIONS.get(verdict.verdict, "approve")
    reason = verdict.reason or (f"runaway-monitor: {verdict.cause}" if verdict.cause else None)
    return Approval(decision=chosen, explanation=reason or f"runaway-monitor: {verdict.verdict}")  # type: ignore[arg-type]


def monitor_approver() -> Approver:
    async def approve(message: str, call: Any, view: Any, history: list[Any]) -> Approval:
        state = sample_state()
        if state is None:
            return decision(None)
        link = await link_episode(state.uuid)
        link.episode.published_by_hooks = False
        link.own = True
        step = link.episode.steps + 1
        link.expect(step)
        if not await link.connect():
            return decision(None)
        arguments = call.arguments if isinstance(call.arguments, dict) else str(call.arguments)
        await link.publish(
            StepEvent(
                episode_id=link.episode_id,
                step=step,
                text=message or None,
                tool_calls=[ToolCall(name=call.function, arguments=arguments, id=call.id)],
            )
        )
        answer = await link.verdict(step)
        return decision(answer[0] if answer else None)

    return approve
