"""The OpenAI chat agents' request on the wire is the one ``chat.completions.create`` sends.

Why: the OpenAI agent posts the body through the SDK's lower-level ``client.post``
(create() walks every message through a TypedDict transform: ~8-16 ms of CPU a call at
40 messages), and the OpenAI-compatible agent posts it with aiohttp directly. That is
only safe while the request stays the very same: same JSON body (``extra_body`` merged
into it at the top level, as create() merges it, never sent as a field of its own), same
path, same auth and content type (and the SDK's own headers, for the SDK agent). Each
test sends one request each way and compares what the local server recorded.
"""

import socket
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry

from schemas.episode import AgentSpec
from tests.fakes.model_server import FakeModelServer, raw, text
from tests.fakes.stub_env import MO_OBSERVATION, context
from tests.model_helpers import KEY, settings
from workers.agents.models import create_model_agent
from workers.models.agent import ModelAgent
from workers.models.errors import ModelGaveUp
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics
from workers.models.structured import response_format

SYSTEM = "You are a homeostasis agent."
NAMES = ("A", "B")
# headers that differ between any two requests, whoever sends them
VOLATILE = frozenset({"x-stainless-read-timeout"})


def messages(pairs: int) -> list[Any]:
    out: list[Any] = [{"role": "system", "content": SYSTEM}]
    for i in range(pairs):
        out.append({"role": "user", "content": f"{MO_OBSERVATION} ({i}, é ✓)"})
        out.append({"role": "assistant", "content": f"{i}, {i + 1}"})
    out.append({"role": "user", "content": MO_OBSERVATION})
    return out


def agent_for(server: FakeModelServer, kind: str, **options: Any) -> ModelAgent:
    opts = {"model": "m-1", "base_url": server.openai_base_url, **options}
    return create_model_agent(AgentSpec(kind=kind, options=opts), settings(), ModelLimits())


async def sent_both_ways(
    server: FakeModelServer, agent: ModelAgent, msgs: list[Any], create_kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """(the agent's request, create()'s request with ``create_kwargs``): through the same
    SDK client for the OpenAI agent, through a plain SDK client for the compatible one
    (which posts with aiohttp, not the SDK)."""
    server.default = text("1, 2")
    sdk = agent._client if isinstance(agent._client, openai.AsyncOpenAI) else None
    try:
        await agent.act(context(msgs))
        if sdk is None:
            sdk = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
        await sdk.chat.completions.create(messages=msgs, **create_kwargs)
    finally:
        await agent.aclose()
        if sdk is not None:
            await sdk.close()
    mine, reference = server.requests
    return mine, reference


def assert_same_request(mine: Any, reference: Any, *, sdk_headers: bool = True) -> None:
    """Same path and body; the SDK's own headers too when both went through the SDK."""
    assert mine.path == reference.path == "/v1/chat/completions"
    assert mine.body == reference.body
    assert "extra_body" not in mine.body
    if sdk_headers:
        headers = {k: v for k, v in mine.headers.items() if k not in VOLATILE}
        expected = {k: v for k, v in reference.headers.items() if k not in VOLATILE}
        assert headers == expected
    assert mine.headers["authorization"] == reference.headers["authorization"] == f"Bearer {KEY}"
    assert mine.headers["content-type"] == reference.headers["content-type"]
    assert mine.headers["content-type"] == "application/json"


@pytest.mark.parametrize("structured", ["off", "json_schema", "json_object"])
async def test_compatible_request_is_what_create_sends(
    fake_model_server: FakeModelServer, structured: str
) -> None:
    extra = {"top_k": 3, "repeat_penalty": 1.1, "grammar": None, "stop": ["\n\n"]}
    agent = agent_for(
        fake_model_server,
        "openai-compatible",
        structured=structured,
        temperature=0.0,
        top_p=0.5,
        seed=2,
        max_tokens=32,
        extra_body=extra,
    )
    kwargs: dict[str, Any] = {
        "model": "m-1",
        "max_tokens": 32,
        "temperature": 0.0,
        "top_p": 0.5,
        "seed": 2,
        "extra_body": extra,
    }
    fmt = response_format(agent.structured_mode, NAMES)
    if fmt is not None:
        kwargs["response_format"] = fmt
    mine, reference = await sent_both_ways(fake_model_server, agent, messages(20), kwargs)
    assert_same_request(mine, reference, sdk_headers=False)
    assert mine.body["top_k"] == 3 and mine.body["grammar"] is None  # merged, top level
    assert len(mine.body["messages"]) == 42


async def test_openai_request_is_what_create_sends(fake_model_server: FakeModelServer) -> None:
    agent = agent_for(fake_model_server, "openai", structured="json_schema")
    kwargs = {
        "model": "m-1",
        "max_completion_tokens": 256,
        "response_format": response_format(agent.structured_mode, NAMES),
    }
    mine, reference = await sent_both_ways(fake_model_server, agent, messages(3), kwargs)
    assert_same_request(mine, reference)
    assert "max_tokens" not in mine.body


async def test_extra_body_overrides_a_field_as_create_does(
    fake_model_server: FakeModelServer,
) -> None:
    agent = agent_for(
        fake_model_server, "openai-compatible", structured="off", extra_body={"max_tokens": 7}
    )
    kwargs = {"model": "m-1", "max_tokens": 256, "extra_body": {"max_tokens": 7}}
    mine, reference = await sent_both_ways(fake_model_server, agent, messages(1), kwargs)
    assert_same_request(mine, reference, sdk_headers=False)
    assert mine.body["max_tokens"] == 7


@pytest.mark.parametrize(
    ("body", "expected", "usage"),
    [
        ('{"choices": [{"message": {"role": "assistant", "content": null}}]}', "", None),
        (
            '{"choices": [{"message": {"content": "3, 4"}}], "usage": {"prompt_tokens": 9,'
            ' "completion_tokens": 2, "total_tokens": 11}, "extra": {"x": [1]}}',
            "3, 4",
            (9, 2),
        ),
        (
            '{"choices": [{"message": {"content": "3, 4"}}], "usage": {"prompt_tokens": "9"}}',
            "3, 4",
            None,
        ),
    ],
    ids=["null-content", "usage", "usage-not-int"],
)
async def test_answer_read_from_the_raw_body(
    fake_model_server: FakeModelServer, body: str, expected: str, usage: Any
) -> None:
    fake_model_server.push(raw(body))
    agent = agent_for(fake_model_server, "openai-compatible", structured="off")
    try:
        reply = await agent.act(context(messages(0)))
    finally:
        await agent.aclose()
    assert reply.text == expected
    assert agent.last_call is not None
    if usage is None:
        assert agent.last_call.usage_estimated
    else:
        assert (reply.usage.input_tokens, reply.usage.output_tokens) == usage


@pytest.mark.parametrize("kind", ["openai", "openai-compatible"])
async def test_refused_connection_is_a_connection_error_not_a_timeout(kind: str) -> None:
    """The SDK's aiohttp transport reports a refused connection as a connect timeout."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = CollectorRegistry()
    agent = create_model_agent(
        AgentSpec(
            kind=kind,
            options={"model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 1},
        ),
        settings(),
        ModelLimits(),
        metrics=ModelMetrics(registry),
    )
    try:
        with pytest.raises(ModelGaveUp, match="could not connect") as caught:
            await agent.act(context(messages(0)))
    finally:
        await agent.aclose()
    assert caught.value.reason == "connection_error"
    labels = {"provider": kind, "reason": "connection_error"}
    assert registry.get_sample_value("runaway_model_retries_total", labels) == 1


async def test_agents_use_aiohttp(fake_model_server: FakeModelServer) -> None:
    """CPU per call: the OpenAI agent uses the SDK's aiohttp transport, not httpcore (see
    ``_http_client``); the compatible agent posts with aiohttp itself (``_DirectChat``)."""
    from workers.models.openai_chat import _DirectChat

    sdk_agent = agent_for(fake_model_server, "openai", structured="off")
    direct = agent_for(fake_model_server, "openai-compatible", structured="off")
    try:
        await sdk_agent.act(context(messages(0)))
        await direct.act(context(messages(0)))
        assert isinstance(sdk_agent._client._client, openai.DefaultAioHttpClient)
        assert isinstance(direct._client, _DirectChat)
    finally:
        await sdk_agent.aclose()
        await direct.aclose()
