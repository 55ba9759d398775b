"""The OpenAI Agents SDK guard on a real ``Agent`` (the SDK's Chat Completions model on
the local scripted model server, its tracing off), against the scripted sidecar: the
hooks report each LLM call, the tool guardrail rejects or raises, and a reset resumes
from a ``RunState`` holding the savepoint step's context."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, RunState, function_tool
from openai import AsyncOpenAI

from monitor.client import Monitor
from monitor.integrations.guard import TOOL_AGENT
from monitor.integrations.openai_agents import RunawayGuard, RunawayInterrupt
from tests.fakes.model_server import FakeModelServer, text, tool_calls
from tests.fakes.sidecar import FakeSidecar, verdict

REMINDER = "Remember: keep both objectives balanced."
NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture
async def client(fake_model_server: FakeModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=fake_model_server.openai_base_url, api_key="test", max_retries=0
    ) as client:
        yield client


def _agent(client: AsyncOpenAI, guard: RunawayGuard, harvested: list[int]) -> Agent[Any]:
    @function_tool
    def harvest(amount: int) -> str:
        """Harvest this many fish."""
        harvested.append(amount)
        return f"harvested {amount}"

    model = OpenAIChatCompletionsModel(model="fake", openai_client=client)
    return Agent(name="fisher", instructions="Fish.", model=model, tools=guard.protect(harvest))


async def test_reset_resumes_from_the_savepoint_run_state(
    fake_model_server: FakeModelServer, fake_sidecar: FakeSidecar, client: AsyncOpenAI
) -> None:
    fake_model_server.push(
        tool_calls(("harvest", {"amount": 1})),
        tool_calls(("harvest", {"amount": 2})),
        tool_calls(("harvest", {"amount": 3})),
        text("I will harvest sustainably."),
    )
    fake_sidecar.answer(
        3, verdict("reset", savepoint_step=1, reminder=REMINDER, reason="runaway", cause="runaway")
    )
    guard = RunawayGuard(Monitor(fake_sidecar.url), register={"labels": {"model": "fake"}})
    harvested: list[int] = []
    agent = _agent(client, guard, harvested)
    result = await guard.run(agent, "Fish for a while.", run_config=NO_TRACING)

    assert result.final_output == "I will harvest sustainably."
    assert harvested == [1, 2]  # the guardrail raised before step 3's tool ran
    [steps] = fake_sidecar.steps.values()
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["tool_calls"][0]["name"] == "harvest"
    assert steps[0]["tool_calls"][0]["arguments"] == {"amount": 1}
    assert steps[1]["state"] == {"tool_results": {"harvest": "harvested 1"}}
    assert steps[3]["text"] == "I will harvest sustainably."
    assert fake_sidecar.registered == [{"labels": {"model": "fake"}, **TOOL_AGENT}]
    # the model was asked again from the savepoint's context plus the reminder
    resumed = fake_model_server.requests[3].messages
    assert [m["role"] for m in resumed] == ["system", "user", "assistant", "tool", "user"]
    assert resumed[2]["tool_calls"][0]["function"]["arguments"] == '{"amount": 1}'
    assert resumed[3]["content"] == "harvested 1" and resumed[4]["content"] == REMINDER
    # the savepoint survives serialisation: a stored RunState resumes the same context
    state = guard.savepoint_state(agent, 1, REMINDER)
    restored = await RunState.from_json(agent, state.to_json())
    fake_model_server.push(text("Resumed from storage."))
    again = await Runner.run(agent, restored, run_config=NO_TRACING)
    assert again.final_output == "Resumed from storage."
    assert fake_model_server.requests[4].messages == resumed
    with pytest.raises(LookupError):
        guard.savepoint_state(agent, 99)


async def test_block_remind_and_stop(
    fake_model_server: FakeModelServer, fake_sidecar: FakeSidecar, client: AsyncOpenAI
) -> None:
    fake_model_server.push(
        tool_calls(("harvest", {"amount": 5})),
        tool_calls(("harvest", {"amount": 1})),
        text("Harvesting everything now."),
    )
    fake_sidecar.answer(1, verdict("block", reason="the same tool call again", cause="loop"))
    fake_sidecar.answer(2, verdict("remind", reminder=REMINDER, cause="self_imitation"))
    fake_sidecar.answer(3, verdict("stop", reason="runaway maximisation", cause="runaway"))
    guard = RunawayGuard(Monitor(fake_sidecar.url))
    harvested: list[int] = []
    agent = _agent(client, guard, harvested)
    with pytest.raises(RunawayInterrupt) as stopped:
        await guard.run(agent, "Fish.", run_config=NO_TRACING)

    assert stopped.value.result.stop and stopped.value.result.reason == "runaway maximisation"
    assert harvested == [1]  # step 1's call was rejected
    second = fake_model_server.requests[1].messages
    assert second[-1]["role"] == "tool"
    assert second[-1]["content"] == "Tool call blocked by runaway-monitor: the same tool call again"
    third = fake_model_server.requests[2].messages
    assert [m["role"] for m in third[-2:]] == ["tool", "user"]
    assert third[-1]["content"] == REMINDER
    assert len(fake_model_server.requests) == 3
