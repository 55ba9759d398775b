"""A model agent's options: ``AgentSpec.options`` validated, defaults from Settings.

Why a model of its own: options arrive from CLI flags, experiment YAML and the wire; a
typo ("temprature") must be an error naming the field, not a silently ignored key. Keys
are never options: they come only from the settings (the environment).
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.settings import Settings
from workers.models.retry import RetryPolicy
from workers.models.structured import StructuredMode


def _check_bias(bias: dict[str, float] | None) -> dict[str, float] | None:
    for token, value in (bias or {}).items():
        if not -100 <= value <= 100:
            raise ValueError(f"logit_bias[{token!r}] = {value}: must be in [-100, 100]")
    return bias


class ModelOptions(BaseModel):
    """Per-agent options; ``None`` means "take the settings' default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    logit_bias: dict[str, float] | None = Field(
        default=None,
        description="token id (a string) -> bias in [-100, 100]; OpenAI's and llama.cpp's field",
    )
    structured: StructuredMode = StructuredMode.AUTO
    context_tokens: int | None = Field(default=None, ge=256)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=20)
    objectives: tuple[str, ...] | None = Field(
        default=None, description="answer field names; default: the environment's objectives"
    )
    price_per_mtok: tuple[float, float] | None = Field(
        default=None, description="(input, output) USD per million tokens, overrides the table"
    )
    extra_body: dict[str, Any] | None = Field(
        default=None, description="extra request fields for OpenAI-compatible servers"
    )

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        return _check_bias(bias)


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Options with every default filled in from the settings."""

    model: str
    base_url: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int
    seed: int | None
    logit_bias: dict[str, float] | None
    structured: StructuredMode
    context_tokens: int
    objectives: tuple[str, ...] | None
    price_per_mtok: tuple[float, float] | None
    extra_body: dict[str, Any] | None
    retry: RetryPolicy


def resolve_options(raw: dict[str, Any], settings: Settings) -> ResolvedOptions:
    """Validate ``raw`` and fill the gaps from ``settings``."""
    opts = ModelOptions.model_validate(raw)
    retries = opts.max_retries if opts.max_retries is not None else settings.model_max_retries
    return ResolvedOptions(
        model=opts.model,
        base_url=opts.base_url or settings.model_base_url,
        temperature=opts.temperature
        if opts.temperature is not None
        else settings.model_temperature,
        top_p=opts.top_p if opts.top_p is not None else settings.model_top_p,
        max_tokens=opts.max_tokens or settings.model_max_tokens,
        seed=opts.seed if opts.seed is not None else settings.model_seed,
        logit_bias=opts.logit_bias,
        structured=opts.structured,
        context_tokens=opts.context_tokens or settings.context_tokens,
        objectives=opts.objectives,
        price_per_mtok=opts.price_per_mtok,
        extra_body=opts.extra_body,
        retry=RetryPolicy(
            max_attempts=retries + 1,
            attempt_timeout_s=opts.timeout_s or settings.model_timeout_s,
            base_delay_s=settings.model_backoff_base_s,
            max_delay_s=settings.model_backoff_max_s,
            max_retry_after_s=settings.model_max_retry_after_s,
        ),
    )
