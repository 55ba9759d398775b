"""The LangChain 1.x middleware on a real ``create_agent`` graph (ChatOpenAI on the local
scripted model server, ``InMemorySaver``, and ``SqliteSaver`` for a checkpointer that
keeps its state outside the process), against the scripted sidecar: each model call
is a step with its tool calls, and each verdict does what it says, a reset by forking the
thread from the savepoint's checkpoint."""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from monitor.client import Monitor
from monitor.integrations.guard import TOOL_AGENT
from monitor.integrations.langchain import RunawayMiddleware
from tests.fakes.model_server import FakeModelServer, text, tool_calls
from tests.fakes.sidecar import FakeSidecar, verdict

REMINDER = "Remember: keep both objectives balanced."


def _agent(
    server: FakeModelServer,
    middleware: RunawayMiddleware,
    harvested: list[int],
    checkpointer: Any = None,
) -> Any:
    @tool
    def harvest(amount: int) -> str:
        """Harvest this many fish."""
        harvested.append(amount)
        return f"harvested {amount}"

    model = ChatOpenAI(
        model="fake", base_url=server.openai_base_url, api_key="test", max_retries=0, timeout=10
    )
    return create_agent(
        model, [harvest], middleware=[middleware], checkpointer=checkpointer or InMemorySaver()
    )


def _chain(agent: Any, config: dict[str, Any]) -> list[Any]:
    """The current branch of the thread, head first (following parent checkpoints)."""
    snaps, snap = [], agent.get_state(config)
    while snap is not None and snap.config:
        snaps.append(snap)
        snap = agent.get_state(snap.parent_config) if snap.parent_config else None
    return snaps


def _id(config: dict[str, Any] | None) -> str | None:
    return (config or {}).get("configurable", {}).get("checkpoint_id")


@pytest.mark.parametrize(
    ("use_async", "saver"),
    [(False, "memory"), (True, "memory"), (False, "sqlite")],
    ids=["invoke-memory", "ainvoke-memory", "invoke-sqlite"],
)
async def test_reset_forks_the_thread_from_the_savepoint_checkpoint(
    fake_model_server: FakeModelServer,
    fake_sidecar: FakeSidecar,
    use_async: bool,
    saver: str,
    tmp_path: Path,
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

    def fish(step: Any) -> tuple[dict[str, float], dict[str, float]] | None:
        calls = [c for c in step.tool_calls if c["name"] == "harvest"]
        return ({"fish": 10.0}, {"fish": float(calls[0]["arguments"]["amount"])}) if calls else None

    middleware = RunawayMiddleware(
        Monitor(fake_sidecar.url),
        objective_map=fish,
        register={"objectives": [{"name": "fish", "kind": "renewable", "capacity": 20}]},
    )
    harvested: list[int] = []
    db = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    checkpointer = SqliteSaver(db) if saver == "sqlite" else InMemorySaver()
    agent = _agent(fake_model_server, middleware, harvested, checkpointer)
    config = {"configurable": {"thread_id": "t1"}}
    task = {"messages": [HumanMessage("Fish for a while.")]}
    if use_async:  # the async hooks (aafter_model, awrap_tool_call) and ainvoke
        result = await middleware.ainvoke(agent, task, config)
    else:
        result = await asyncio.to_thread(middleware.invoke, agent, task, config)

    # what the monitor got: one step per model call, tool calls and the results of the last
    [episode] = fake_sidecar.steps
    steps = fake_sidecar.steps[episode]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["tool_calls"][0]["name"] == "harvest"
    assert steps[0]["tool_calls"][0]["arguments"] == {"amount": 1}
    assert steps[0]["action"] == {"fish": 1.0} and steps[0]["observation"] == {"fish": 10.0}
    assert steps[1]["state"] == {"tool_results": {"harvest": "harvested 1"}}
    assert steps[3]["text"] == "I will harvest sustainably." and "tool_calls" not in steps[3]
    assert fake_sidecar.registered[0]["objectives"][0]["name"] == "fish"
    assert harvested == [1, 2]  # the tools of the reset step never ran

    # the thread resumed from the savepoint's checkpoint: the state after step 1's tools,
    # about to call the model; the fork (an input checkpoint) hangs under it
    chain = _chain(agent, config)
    fork = next(s for s in chain if s.metadata.get("source") == "input")
    savepoint = chain[chain.index(fork) + 1]
    assert _id(fork.parent_config) == _id(savepoint.config)
    assert savepoint.values["runaway_step"] == 1 and savepoint.next == ("model",)
    assert savepoint.values["messages"][-1].content == "harvested 1"
    assert chain[chain.index(fork) - 1].values["messages"][-1].content == REMINDER
    children = [
        s for s in agent.get_state_history(config) if _id(s.parent_config) == _id(savepoint.config)
    ]
    assert len(children) == 2  # the abandoned branch (step 2's answer) and the fork
    [abandoned] = [c for c in children if _id(c.config) != _id(fork.config)]
    assert abandoned.values["messages"][-1].tool_calls[0]["args"] == {"amount": 2}
    # the head: the savepoint's context, the reminder, the new answer; steps 2-3 gone
    messages = result["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "HumanMessage",
        "AIMessage",
    ]
    assert messages[3].content == REMINDER
    assert messages[4].content == "I will harvest sustainably."
    assert chain[0].values["runaway_step"] == 4
    # and the model was asked from exactly that context
    last_request = fake_model_server.requests[-1].messages
    assert [m["role"] for m in last_request] == ["user", "assistant", "tool", "user"]
    assert last_request[-1]["content"] == REMINDER
    db.close()


async def test_block_remind_and_stop(
    fake_model_server: FakeModelServer, fake_sidecar: FakeSidecar
) -> None:
    fake_model_server.push(
        tool_calls(("harvest", {"amount": 5})),
        tool_calls(("harvest", {"amount": 1})),
        tool_calls(("harvest", {"amount": 2})),
    )
    fake_sidecar.answer(1, verdict("block", reason="the same tool call again", cause="loop"))
    fake_sidecar.answer(2, verdict("remind", reminder=REMINDER, cause="self_imitation"))
    fake_sidecar.answer(3, verdict("stop", reason="runaway maximisation", cause="runaway"))
    middleware = RunawayMiddleware(Monitor(fake_sidecar.url))
    harvested: list[int] = []
    agent = _agent(fake_model_server, middleware, harvested)
    config = {"configurable": {"thread_id": "t2"}}
    result = await asyncio.to_thread(
        middleware.invoke, agent, {"messages": [HumanMessage("Fish.")]}, config
    )

    assert harvested == [1]  # step 1 blocked, step 3 stopped before its tool ran
    assert fake_sidecar.registered == [TOOL_AGENT]  # no objectives: tool calls are judged
    second = fake_model_server.requests[1].messages
    assert second[-1]["role"] == "tool"
    assert second[-1]["content"] == "Tool call blocked by runaway-monitor: the same tool call again"
    third = fake_model_server.requests[2].messages
    assert [m["role"] for m in third[-2:]] == ["tool", "user"]
    assert third[-1]["content"] == REMINDER
    assert len(fake_model_server.requests) == 3  # the stop ended the run
    assert middleware.stopped["t2"].reason == "runaway maximisation"
    last = result["messages"][-1]
    assert isinstance(last, ToolMessage) and "runaway maximisation" in last.content
