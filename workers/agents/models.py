"""``create_model_agent``: the one place that turns an AgentSpec into a model agent.

Why here: the episode runner, the CLI and experiments build agents from specs; they must
not know which SDK backs which kind, nor where keys come from. Keys come only from the
settings (the environment); an OpenAI key is never sent to another server's base_url.
"""

from schemas.episode import AgentSpec
from schemas.settings import Settings
from workers.models.agent import ModelAgent
from workers.models.anthropic_messages import AnthropicAgent
from workers.models.config import resolve_options
from workers.models.kinds import MODEL_KINDS, ModelConfigError
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics
from workers.models.openai_chat import OpenAIChatAgent, OpenAICompatibleAgent
from workers.models.structured import StructuredMode


def create_model_agent(
    spec: AgentSpec,
    settings: Settings,
    limits: ModelLimits,
    *,
    metrics: ModelMetrics | None = None,
) -> ModelAgent:
    """Build the agent for ``spec.kind`` in :data:`MODEL_KINDS`; options per :class:`ModelOptions`.

    Raises :class:`ModelConfigError` (no key in its message) or pydantic's
    ``ValidationError`` naming a bad option.
    """
    options = resolve_options(spec.options, settings)
    if spec.kind == "openai":
        if settings.openai_api_key is None:
            raise ModelConfigError("kind 'openai' needs OPENAI_API_KEY in the environment")
        return OpenAIChatAgent(
            options, api_key=settings.openai_api_key, limits=limits, metrics=metrics
        )
    if spec.kind == "anthropic":
        if settings.anthropic_api_key is None:
            raise ModelConfigError("kind 'anthropic' needs ANTHROPIC_API_KEY in the environment")
        if options.structured is StructuredMode.JSON_OBJECT:
            raise ModelConfigError("kind 'anthropic' supports structured auto, json_schema, off")
        return AnthropicAgent(
            options, api_key=settings.anthropic_api_key, limits=limits, metrics=metrics
        )
    if spec.kind == "openai-compatible":
        if not options.base_url:
            raise ModelConfigError("kind 'openai-compatible' needs a base_url (--base-url)")
        return OpenAICompatibleAgent(
            options, api_key=settings.model_api_key, limits=limits, metrics=metrics
        )
    raise ModelConfigError(
        f"unknown model agent kind {spec.kind!r}; expected one of {', '.join(MODEL_KINDS)}"
    )


__all__ = ["MODEL_KINDS", "ModelConfigError", "create_model_agent"]
