"""Each mitigation's effect on what a model receives, asserted on the requests the local
OpenAI-compatible server recorded (the real SDK makes the calls)."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry

from schemas.episode import AgentSpec
from schemas.settings import Settings
from tests.fakes.model_server import FakeModelServer, text
from tests.mitigation_helpers import recovery, run_episode
from workers.agents.models import create_model_agent
from workers.mitigations import PROMPT_VARIANTS
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics


@contextlib.asynccontextmanager
async def model_agent(server: FakeModelServer) -> AsyncIterator[Any]:
    """The real OpenAI-compatible agent pointed at the fake server, closed afterwards."""
    spec = AgentSpec(
        kind="openai-compatible",
        options={"model": "m", "base_url": server.openai_base_url, "structured": "off"},
    )
    agent = create_model_agent(
        spec, Settings(), ModelLimits(concurrency=4), metrics=ModelMetrics(CollectorRegistry())
    )
    try:
        yield agent
    finally:
        await agent.aclose()


def sent(server: FakeModelServer) -> list[list[dict]]:
    """The message list of every chat request, in order (one request per step here)."""
    return [r.messages for r in server.requests]


async def test_savepoint_recovery_on_the_wire(redis, settings, fake_model_server):
    async with model_agent(fake_model_server) as agent:
        await run_episode(
            redis, settings, "savepoint-recovery", agent=agent, control=[(8, [recovery(8, 5)])]
        )
    step9 = sent(fake_model_server)[8]
    assert len(step9) == 1 + 2 * 5 + 1  # system, steps 1-5, the step-9 observation
    assert step9[-1]["content"].startswith("REMEMBER\n\n")


async def test_truncation_and_no_mitigation_on_the_wire(redis, settings, fake_model_server):
    async with model_agent(fake_model_server) as agent:
        await run_episode(
            redis, settings, "truncate-on-flip", agent=agent, control=[(8, [recovery(8, 5)])]
        )
    assert [m["role"] for m in sent(fake_model_server)[8]] == ["system", "user"]
    fake_model_server.requests.clear()
    async with model_agent(fake_model_server) as agent:
        await run_episode(redis, settings, "none", agent=agent, control=[(8, [recovery(8, 5)])])
    assert len(sent(fake_model_server)[8]) == 1 + 2 * 8 + 1  # the command was ignored


async def test_reminders_short_context_and_prompt_variants_on_the_wire(
    redis, settings, fake_model_server
):
    async with model_agent(fake_model_server) as agent:
        await run_episode(
            redis, settings, "none+reminder-every-4+short-context-2+few-shot-2+stoic", agent=agent
        )
    requests = sent(fake_model_server)
    assert len(requests) == 12
    for step, messages in enumerate(requests, start=1):
        assert ("Reminder:" in messages[-1]["content"]) == (step % 4 == 0)
        assert len(messages) <= 1 + 2 * 2 + 1
        system = messages[0]["content"]
        assert PROMPT_VARIANTS["stoic"] in system and system.count("Answer: ") == 2


async def test_rolling_summary_and_voluntary_reset_on_the_wire(redis, settings, fake_model_server):
    fake_model_server.default = text("0, 0")
    async with model_agent(fake_model_server) as agent:
        await run_episode(redis, settings, "none+rolling-summary-5", steps=7, agent=agent)
    requests = sent(fake_model_server)
    assert requests[5][-1]["content"].startswith("Before the next step, summarise")
    assert "Your own summary of the steps so far:" in requests[6][0]["content"]
    assert len(requests[6]) == 2

    fake_model_server.requests.clear()
    fake_model_server.push(*[text("0, 0")] * 5, text("Things went wrong.\nRESET"))
    async with model_agent(fake_model_server) as agent:
        result, _ = await run_episode(
            redis, settings, "none+voluntary-reset", safe_upto=3, agent=agent
        )
    assert result.voluntary_resets == [6]
    requests = sent(fake_model_server)
    assert "RESET" in requests[0][0]["content"]
    assert len(requests[6]) == 1 + 2 * 3 + 1  # asked again from the step-3 savepoint
