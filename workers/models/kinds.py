"""The model agent kinds, importable without loading any provider SDK (CLI start-up)."""

MODEL_KINDS: tuple[str, ...] = ("openai", "anthropic", "openai-compatible")


class ModelConfigError(ValueError):
    """The spec cannot make a model agent (unknown kind, missing key or base_url)."""
