"""create_model_agent: kinds, keys from the environment only, options validated."""

import pytest
from pydantic import ValidationError

from schemas.episode import AgentSpec
from schemas.settings import Settings
from workers.agents.models import ModelConfigError, create_model_agent
from workers.models.anthropic_messages import AnthropicAgent
from workers.models.limits import ModelLimits
from workers.models.openai_chat import OpenAIChatAgent, OpenAICompatibleAgent

KEY = "sk-env-SECRET-42424242"


def test_keys_come_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY + "a")
    s = Settings()
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == KEY
    assert s.anthropic_api_key is not None
    assert KEY not in repr(s) and KEY not in str(s.model_dump())


def test_kinds() -> None:
    s = Settings(openai_api_key=KEY, anthropic_api_key=KEY)  # type: ignore[arg-type]
    limits = ModelLimits()
    a = create_model_agent(AgentSpec(kind="openai", options={"model": "gpt-4o-mini"}), s, limits)
    b = create_model_agent(AgentSpec(kind="anthropic", options={"model": "claude-x"}), s, limits)
    c = create_model_agent(
        AgentSpec(
            kind="openai-compatible", options={"model": "m", "base_url": "http://127.0.0.1:1/v1"}
        ),
        s,
        limits,
    )
    assert isinstance(a, OpenAIChatAgent) and not isinstance(a, OpenAICompatibleAgent)
    assert isinstance(b, AnthropicAgent) and isinstance(c, OpenAICompatibleAgent)
    for agent in (a, b, c):
        assert KEY not in repr(agent) and KEY not in str(vars(agent).get("options"))
    # an OpenAI key is never handed to another server
    assert c._api_key is None


def test_missing_key_and_base_url_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "RUNAWAY_MODEL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    limits = ModelLimits()
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY"):
        create_model_agent(AgentSpec(kind="openai", options={"model": "gpt"}), s, limits)
    with pytest.raises(ModelConfigError, match="ANTHROPIC_API_KEY"):
        create_model_agent(AgentSpec(kind="anthropic", options={"model": "c"}), s, limits)
    with pytest.raises(ModelConfigError, match="base_url"):
        create_model_agent(AgentSpec(kind="openai-compatible", options={"model": "m"}), s, limits)
    with pytest.raises(ModelConfigError, match="unknown model agent kind 'gemini'"):
        create_model_agent(AgentSpec(kind="gemini", options={"model": "m"}), s, limits)


def test_unknown_option_names_the_field() -> None:
    s = Settings(openai_api_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="temprature"):
        create_model_agent(
            AgentSpec(kind="openai", options={"model": "gpt", "temprature": 0.1}),
            s,
            ModelLimits(),
        )


def test_settings_defaults_flow_into_options() -> None:
    s = Settings(
        openai_api_key=KEY,  # type: ignore[arg-type]
        model_temperature=0.3,
        model_max_retries=1,
        model_timeout_s=7,
        context_tokens=1024,
    )
    agent = create_model_agent(AgentSpec(kind="openai", options={"model": "gpt"}), s, ModelLimits())
    o = agent.options
    assert (o.temperature, o.context_tokens) == (0.3, 1024)
    assert (o.retry.max_attempts, o.retry.attempt_timeout_s) == (2, 7)
