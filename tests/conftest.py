"""Shared fixtures: the fake model servers and the real SmolLM server live in tests/fakes/."""

pytest_plugins = ["tests.fakes.model_server", "tests.fakes.llama_server"]
