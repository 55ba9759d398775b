"""Settings for model-agent tests: a fake key and fast, bounded retries."""

from schemas.settings import Settings

KEY = "sk-test-SECRET-0123456789abcdef"


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "openai_api_key": KEY,
        "model_api_key": KEY,
        "model_backoff_base_s": 0.01,
        "model_backoff_max_s": 0.02,
        "model_timeout_s": 5.0,
        "model_max_retries": 3,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]
