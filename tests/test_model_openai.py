"""OpenAI and OpenAI-compatible agents through the real SDK against a local fake server."""

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from schemas.episode import AgentSpec
from tests.fakes.model_server import (
    FakeModelServer,
    json_answer,
    raw,
    respond_with,
    sleep,
    status,
    text,
)
from tests.fakes.stub_env import MO_OBSERVATION, context, history
from tests.model_helpers import KEY, settings
from workers.agents.models import create_model_agent
from workers.models.agent import ModelAgent
from workers.models.errors import ModelGaveUp, ModelRejected, ModelResponseError
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics

SYSTEM = "You are a homeostasis agent."


# the SDK agent (OpenAI) and the one that posts with aiohttp itself (OpenAI-compatible)
KINDS = ["openai", "openai-compatible"]


def make_agent(
    server: FakeModelServer,
    kind: str = "openai",
    registry: CollectorRegistry | None = None,
    settings_overrides: dict[str, object] | None = None,
    **options: object,
) -> ModelAgent:
    opts = {"model": "gpt-4o-mini", "base_url": server.openai_base_url, **options}
    metrics = ModelMetrics(registry) if registry is not None else None
    return create_model_agent(
        AgentSpec(kind=kind, options=opts),
        settings(**(settings_overrides or {})),
        ModelLimits(),
        metrics=metrics,
    )


def one_step() -> list:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MO_OBSERVATION}]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_free_text_answer_and_usage(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(text("3, 4"))
    registry = CollectorRegistry()
    agent = make_agent(fake_model_server, registry=registry, structured="off", temperature=0.2)
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "3, 4"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 3)
    assert reply.usage.cost_usd == pytest.approx((11 * 0.15 + 3 * 0.60) / 1e6)
    assert reply.usage.latency_s > 0
    (req,) = fake_model_server.requests
    assert req.body["messages"] == one_step()
    assert req.body["temperature"] == 0.2
    assert req.body["max_completion_tokens"] == 256
    assert "response_format" not in req.body
    assert sample(registry, "runaway_model_requests_total", provider="openai", outcome="ok") == 1
    assert (
        sample(registry, "runaway_model_tokens_total", provider="openai", direction="input") == 11
    )
    assert sample(registry, "runaway_model_cost_usd_total", provider="openai") > 0


async def test_structured_json_schema_answer(fake_model_server: FakeModelServer) -> None:
    fake_model_server.push(json_answer({"A": 5, "B": 3}))
    agent = make_agent(fake_model_server, seed=7, top_p=0.9)
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "5, 3"
    fmt = fake_model_server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["A", "B"]
    assert schema["properties"]["B"] == {"type": "integer", "minimum": 0}
    assert fake_model_server.requests[0].body["seed"] == 7
    assert agent.last_call is not None and agent.last_call.converted


async def test_structured_answer_not_json_passes_through_for_reask(
    fake_model_server: FakeModelServer,
) -> None:
    fake_model_server.push(text("I would eat 5 and 3"))
    agent = make_agent(fake_model_server)
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "I would eat 5 and 3"  # the environment's parser rejects and re-asks
    assert agent.last_call is not None and not agent.last_call.converted


@pytest.mark.parametrize("kind", KINDS)
async def test_429_retry_after_is_honoured(fake_model_server: FakeModelServer, kind: str) -> None:
    fake_model_server.push(status(429, headers={"Retry-After": "0.3"}), text("1, 1"))
    registry = CollectorRegistry()
    agent = make_agent(fake_model_server, kind=kind, registry=registry, structured="off")
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "1, 1"
    first, second = fake_model_server.requests
    assert second.at - first.at >= 0.3  # backoff alone is at most 0.02 s here
    assert (
        sample(registry, "runaway_model_retries_total", provider=kind, reason="rate_limited") == 1
    )
    assert (
        sample(registry, "runaway_model_requests_total", provider=kind, outcome="rate_limited") == 1
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_500_then_success(fake_model_server: FakeModelServer, kind: str) -> None:
    fake_model_server.push(status(500), status(503), text("2, 2"))
    agent = make_agent(fake_model_server, kind=kind, structured="off")
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "2, 2"
    assert len(fake_model_server.requests) == 3
    assert agent.last_call is not None and agent.last_call.retries == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_timeout_is_retried_then_succeeds(
    fake_model_server: FakeModelServer, kind: str
) -> None:
    fake_model_server.push(sleep(5.0), text("4, 4"))
    registry = CollectorRegistry()
    agent = make_agent(
        fake_model_server, kind=kind, registry=registry, structured="off", timeout_s=0.3
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "4, 4"
    assert 0.3 <= loop.time() - started < 3.0
    assert sample(registry, "runaway_model_retries_total", provider=kind, reason="timeout") == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_gives_up_after_max_attempts(fake_model_server: FakeModelServer, kind: str) -> None:
    fake_model_server.default = status(502, message="bad gateway")
    agent = make_agent(fake_model_server, kind=kind, structured="off", max_retries=2)
    try:
        with pytest.raises(ModelGaveUp) as caught:
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert len(fake_model_server.requests) == 3
    message = str(caught.value)
    assert "gave up after 3 attempts" in message and "HTTP 502" in message
    assert caught.value.reason == "server_error"


@pytest.mark.parametrize("kind", KINDS)
async def test_client_error_is_not_retried(fake_model_server: FakeModelServer, kind: str) -> None:
    fake_model_server.push(status(401, message=f"Incorrect API key provided: {KEY}"))
    agent = make_agent(fake_model_server, kind=kind, structured="off")
    try:
        with pytest.raises(ModelRejected) as caught:
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert len(fake_model_server.requests) == 1
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # SDK error dropped


@pytest.mark.parametrize(
    "body",
    ["{not json", '{"id": "x", "object": "chat.completion"}', '{"choices": []}'],
    ids=["bad-json", "no-choices", "empty-choices"],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_answer_is_a_clear_error(
    fake_model_server: FakeModelServer, body: str, kind: str
) -> None:
    fake_model_server.push(raw(body))
    registry = CollectorRegistry()
    agent = make_agent(fake_model_server, kind=kind, registry=registry, structured="off")
    try:
        with pytest.raises(ModelResponseError, match=f"{kind}: "):
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert len(fake_model_server.requests) == 1
    assert sample(registry, "runaway_model_requests_total", provider=kind, outcome="malformed")


async def test_context_truncation_is_visible_in_the_request(
    fake_model_server: FakeModelServer,
) -> None:
    msgs = history(30, system=SYSTEM, obs_chars=200)  # ~30 * 70 tokens
    agent = make_agent(fake_model_server, structured="off", context_tokens=800, max_tokens=64)
    try:
        await agent.act(context(msgs))
    finally:
        await agent.aclose()
    sent = fake_model_server.requests[0].body["messages"]
    assert sent[0] == {"role": "system", "content": SYSTEM}
    assert sent[-1] == msgs[-1]
    assert len(sent) < len(msgs) and len(sent) % 2 == 0  # system + pairs + latest
    assert sent[1]["role"] == "user" and sent[1:-1] == msgs[len(msgs) - len(sent) + 1 : -1]
    assert agent.last_call is not None
    assert agent.last_call.dropped_pairs == (len(msgs) - len(sent)) // 2


@pytest.mark.parametrize("kind", KINDS)
async def test_key_in_header_never_in_logs(
    fake_model_server: FakeModelServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_model_server.push(status(429, headers={"Retry-After": "0"}), text("1, 1"))
    fake_model_server.push(status(400, message=f"bad key {KEY}"))
    agent = make_agent(fake_model_server, kind=kind, structured="off", model="mystery-model")
    try:
        await agent.act(context(one_step()))
        with pytest.raises(ModelRejected) as caught:
            await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert fake_model_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert caplog.records, "the SDK's debug logging was captured"
    assert KEY not in caplog.text
    assert "no price known for model 'mystery-model'" in caplog.text
    assert KEY not in str(caught.value) and KEY not in repr(agent)


async def test_compatible_auto_falls_back_to_json_object(
    fake_model_server: FakeModelServer,
) -> None:
    def answer(req: object) -> str:
        return '{"A": 7, "B": 8}'

    fake_model_server.push(status(400, message="response_format json_schema unsupported"))
    fake_model_server.default = respond_with(answer)
    agent = make_agent(fake_model_server, kind="openai-compatible", model="smollm")
    try:
        first = await agent.act(context(one_step()))
        second = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert first.text == second.text == "7, 8"
    kinds = [r.body["response_format"]["type"] for r in fake_model_server.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert fake_model_server.requests[1].body["response_format"]["schema"]["required"] == [
        "A",
        "B",
    ]
    assert "max_tokens" in fake_model_server.requests[0].body
    assert fake_model_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_usage_estimated_when_server_reports_none(
    fake_model_server: FakeModelServer,
) -> None:
    fake_model_server.push(text("5, 5", usage=False))
    agent = make_agent(
        fake_model_server, kind="openai-compatible", structured="off", model="smollm2-135m"
    )
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens == 1
    assert reply.usage.cost_usd == 0.0
    assert agent.last_call is not None and agent.last_call.usage_estimated
    assert not agent.last_call.price_known


@pytest.mark.parametrize("kind", KINDS)
async def test_cancellation_is_not_a_failure(fake_model_server: FakeModelServer, kind: str) -> None:
    fake_model_server.push(sleep(5.0))
    registry = CollectorRegistry()
    agent = make_agent(fake_model_server, kind=kind, registry=registry, structured="off")
    try:
        task = asyncio.create_task(agent.act(context(one_step())))
        await asyncio.wait_for(fake_model_server.received.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await agent.aclose()
    assert len(fake_model_server.requests) == 1
    assert sample(registry, "runaway_model_requests_total", provider=kind, outcome="cancelled")
    for outcome in ("timeout", "error", "server_error"):
        assert not sample(registry, "runaway_model_requests_total", provider=kind, outcome=outcome)


async def test_compatible_auto_treats_500_naming_response_format_as_refusal(
    fake_model_server: FakeModelServer,
) -> None:
    # llama-cpp-python answers an unsupported response_format with 500, not 422
    fake_model_server.push(
        status(500, message="Input should be 'text' or 'json_object' at response_format.type")
    )
    fake_model_server.default = json_answer({"A": 1, "B": 2})
    agent = make_agent(fake_model_server, kind="openai-compatible", model="smollm")
    try:
        reply = await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    assert reply.text == "1, 2"
    assert len(fake_model_server.requests) == 2  # the 500 was not retried in the same mode
    assert agent.last_call is not None and agent.last_call.retries == 0


async def test_plain_500_in_structured_mode_is_retried_not_downgraded(
    fake_model_server: FakeModelServer,
) -> None:
    fake_model_server.push(status(500, message="CUDA out of memory"))
    fake_model_server.default = json_answer({"A": 1, "B": 2})
    agent = make_agent(fake_model_server, kind="openai-compatible", model="smollm")
    try:
        await agent.act(context(one_step()))
    finally:
        await agent.aclose()
    kinds = [r.body["response_format"]["type"] for r in fake_model_server.requests]
    assert kinds == ["json_schema", "json_schema"]
