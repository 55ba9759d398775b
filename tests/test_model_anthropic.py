"""The Anthropic agent through the real SDK against a local fake /v1/messages server."""

import logging

import pytest
from prometheus_client import CollectorRegistry

from schemas.episode import AgentSpec
from schemas.settings import Settings
from tests.fakes.model_server import FakeModelServer, raw, sleep, status, text
from tests.fakes.stub_env import MO_OBSERVATION, context, history
from workers.agents.models import ModelConfigError, create_model_agent
from workers.models.agent import ModelAgent
from workers.models.anthropic_messages import to_anthropic
from workers.models.errors import ModelGaveUp, ModelResponseError
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics

KEY = "sk-ant-test-SECRET-fedcba9876543210"
SYSTEM = "You are a homeostasis agent."


def make_agent(
    server: FakeModelServer, registry: CollectorRegistry | None = None, **options: object
) -> ModelAgent:
    s = Settings(
        anthropic_api_key=KEY,  # type: ignore[arg-type]
        model_backoff_base_s=0.01,
        model_backoff_max_s=0.02,
        model_timeout_s=5.0,
        model_max_retries=2,
    )
    opts = {"model": "claude-haiku-4-5", "base_url": server.anthropic_base_url, **options}
    return create_model_agent(
        AgentSpec(kind="anthropic", options=opts),
        s,
        ModelLimits(),
        metrics=ModelMetrics(registry) if registry is not None else None,
    )


def one_step() -> list:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MO_OBSERVATION}]


async def test_success_system_prompt_goes_in_system(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(text("2, 3"))
    agent = make_agent(fake_model_server, temperature=1.5, max_tokens=32, structured="off")
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "2, 3"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 3)
    assert reply.usage.cost_usd == pytest.approx((11 * 1.00 + 3 * 5.00) / 1e6)
    (req,) = fake_model_server.requests
    assert req.path == "/v1/messages"
    assert req.body["system"] == SYSTEM
    assert req.body["messages"] == [{"role": "user", "content": MO_OBSERVATION}]
    assert req.body["max_tokens"] == 32
    assert req.body["temperature"] == 1.0  # clamped to Anthropic's range
    # the SDK sends the key as x-api-key (1.x) or as a bearer token (2.x)
    assert KEY in (req.headers.get("x-api-key"), req.headers.get("authorization", "")[7:])
    assert "anthropic-version" in req.headers
    assert "output_config" not in req.body


async def test_structured_answer_via_output_config(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(text('{"A": 4, "B": 9}'))
    agent = make_agent(fake_model_server)
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "4, 9"
    fmt = fake_model_server.requests[0].body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["properties"] == {"A": {"type": "integer"}, "B": {"type": "integer"}}


async def test_429_retry_after_and_529_overloaded(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(status(429, headers={"retry-after": "0.25"}), status(529), text("1, 1"))
    registry = CollectorRegistry()
    agent = make_agent(fake_model_server, registry=registry)
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "1, 1"
    first, second, _ = fake_model_server.requests
    assert second.at - first.at >= 0.25
    get = registry.get_sample_value
    assert get("runaway_model_retries_total", {"provider": "anthropic", "reason": "rate_limited"})
    assert get("runaway_model_retries_total", {"provider": "anthropic", "reason": "server_error"})


async def test_gives_up_on_timeouts(fake_model_server: FakeModelServer) -> None:
    fake_model_server.default = sleep(5.0)
    agent = make_agent(fake_model_server, timeout_s=0.2, max_retries=1)
    try:
        with pytest.raises(ModelGaveUp, match=r"gave up after 2 attempts.*no answer within 0.2 s"):
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert len(fake_model_server.requests) == 2


async def test_malformed_body(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(raw('{"id": "msg", "type": "message"}'))
    agent = make_agent(fake_model_server)
    try:
        with pytest.raises(ModelResponseError, match="no content blocks"):
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()


async def test_truncation_and_key_hygiene(
    fake_model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    msgs = history(40, system=SYSTEM, obs_chars=200)
    agent = make_agent(fake_model_server, context_tokens=1000, max_tokens=50)
    try:
        await agent.act(context(msgs))
    finally:
        await agent.aclose()
    sent = fake_model_server.requests[0].body
    assert sent["system"] == SYSTEM
    assert sent["messages"][-1] == msgs[-1]
    assert sent["messages"][0]["role"] == "user"
    assert len(sent["messages"]) < len(msgs) - 1
    assert KEY not in caplog.text and KEY not in repr(agent)


def test_to_anthropic_merges_same_role_and_drops_leading_answers() -> None:
    system, turns = to_anthropic(
        [
            {"role": "system", "content": "S"},
            {"role": "assistant", "content": "orphan"},
            {"role": "user", "content": "obs"},
            {"role": "user", "content": "reminder"},
            {"role": "assistant", "content": "1, 1"},
            {"role": "user", "content": "obs2"},
        ]
    )
    assert system == "S"
    assert turns == [
        {"role": "user", "content": "obs\n\nreminder"},
        {"role": "assistant", "content": "1, 1"},
        {"role": "user", "content": "obs2"},
    ]


def test_structured_json_is_refused_for_anthropic() -> None:
    s = Settings(anthropic_api_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="structured"):
        create_model_agent(
            AgentSpec(kind="anthropic", options={"model": "claude", "structured": "json_object"}),
            s,
            ModelLimits(),
        )
