"""Both agent integrations against the real sidecar and detector (in-process, real Redis):
an agent stuck calling the same tool gets the real ``loop`` flag, its repeated calls are
blocked with the detector's reason (the default policy), and the run is stopped at the
loop's stop level. The model is the scripted local server, six identical tool calls."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, function_tool
from aiohttp.test_utils import TestClient
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from openai import AsyncOpenAI

from monitor.client import Monitor
from monitor.integrations.langchain import RunawayMiddleware
from monitor.integrations.openai_agents import RunawayGuard, RunawayInterrupt
from schemas.settings import Settings
from tests.api_helpers import api_client, wait_ready
from tests.fakes.model_server import FakeModelServer, tool_calls

pytestmark = pytest.mark.usefixtures("redis")  # the real sidecar's keys are removed after

BLOCKED = "Tool call blocked by runaway-monitor: loop: search called {} times in a row"


@pytest.fixture
async def sidecar(settings: Settings) -> AsyncIterator[TestClient]:
    async with api_client(settings, step_timeout_s=10) as client:
        await wait_ready(client)
        yield client


def _url(client: TestClient) -> str:
    return str(client.make_url("/")).rstrip("/")


async def _episode(client: TestClient, episode_id: str | None) -> dict[str, Any]:
    return await (await client.get(f"/v1/episodes/{episode_id}")).json()


async def test_langgraph_agent_in_a_tool_loop_is_blocked_then_stopped(
    sidecar: TestClient, fake_model_server: FakeModelServer
) -> None:
    fake_model_server.push(*[tool_calls(("search", {"q": "fish"})) for _ in range(6)])
    searched: list[str] = []

    @tool
    def search(q: str) -> str:
        """Search the catalogue."""
        searched.append(q)
        return "no results"

    middleware = RunawayMiddleware(Monitor(_url(sidecar)))
    model = ChatOpenAI(
        model="m", base_url=fake_model_server.openai_base_url, api_key="test", max_retries=0
    )
    agent = create_agent(model, [search], middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "loop"}}
    result = await asyncio.to_thread(
        middleware.invoke, agent, {"messages": [HumanMessage("Find fish.")]}, config
    )

    assert searched == ["fish", "fish"]  # steps 3-5 blocked, step 6 stopped
    assert len(fake_model_server.requests) == 6
    answers = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    assert answers[:2] == ["no results", "no results"]
    assert answers[2:5] == [BLOCKED.format(n) for n in (3, 4, 5)]
    assert "loop: search called 6 times in a row" in answers[5]
    stopped = middleware.stopped["loop"]
    assert stopped.stop and stopped.cause == "loop"
    body = await _episode(sidecar, middleware.guards["loop"].episode_id)
    assert body["accepted_step"] == 6 and "loop" in body["flags"]


async def test_agents_sdk_agent_in_a_tool_loop_is_blocked_then_stopped(
    sidecar: TestClient, fake_model_server: FakeModelServer
) -> None:
    fake_model_server.push(*[tool_calls(("search", {"q": "fish"})) for _ in range(6)])
    searched: list[str] = []

    @function_tool
    def search(q: str) -> str:
        """Search the catalogue."""
        searched.append(q)
        return "no results"

    guard = RunawayGuard(Monitor(_url(sidecar)))
    async with AsyncOpenAI(
        base_url=fake_model_server.openai_base_url, api_key="test", max_retries=0
    ) as client:
        model = OpenAIChatCompletionsModel(model="m", openai_client=client)
        agent = Agent(
            name="searcher", instructions="Find.", model=model, tools=guard.protect(search)
        )
        with pytest.raises(RunawayInterrupt) as stopped:
            await guard.run(agent, "Find fish.", run_config=RunConfig(tracing_disabled=True))

    assert stopped.value.result.stop and stopped.value.result.cause == "loop"
    assert searched == ["fish", "fish"]
    requests = fake_model_server.requests
    assert len(requests) == 6
    assert [r.messages[-1]["content"] for r in requests[3:6]] == [
        BLOCKED.format(n) for n in (3, 4, 5)
    ]  # what the model read after each blocked call
    body = await _episode(sidecar, guard.episode.episode_id)
    assert body["accepted_step"] == 6 and "loop" in body["flags"]
