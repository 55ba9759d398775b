"""OpenAI Chat Completions, for OpenAI itself and any OpenAI-compatible server.

Why one module for both: vLLM, Ollama and the llama.cpp server speak the same
``/v1/chat/completions`` protocol; they differ only in which structured-answer form they
accept and in parameter names, which the two subclasses below set.
"""

import functools
import ssl
from collections.abc import Sequence
from typing import Any

import openai

from workers.agents.base import Message
from workers.models.agent import ModelAgent, RawAnswer
from workers.models.errors import ModelResponseError
from workers.models.structured import StructuredMode, response_format

PLACEHOLDER_KEY = "not-needed"  # local servers ignore it; the SDK insists on some key


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The SSL context httpx would build for each client (same CA bundle and env)."""
    import httpx2

    return httpx2.create_ssl_context()


class OpenAIChatAgent(ModelAgent):
    """The hosted OpenAI API (``max_completion_tokens``, JSON schema answers)."""

    provider = "openai"
    auto_modes = (StructuredMode.JSON_SCHEMA, StructuredMode.OFF)
    max_tokens_field = "max_completion_tokens"

    def _make_client(self, api_key: str | None) -> openai.AsyncOpenAI:
        timeout = self.options.retry.attempt_timeout_s + 5.0  # the policy's timeout fires first
        return openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_KEY,
            base_url=self.options.base_url,
            max_retries=0,
            timeout=timeout,
            # the SDK's own client, but with the process's one SSL context: building one
            # (loading the CA bundle) cost ~45 ms of CPU per agent, i.e. per episode
            http_client=openai.DefaultAsyncHttpxClient(timeout=timeout, verify=_ssl_context()),
        )

    def _request(
        self, messages: list[Message], mode: StructuredMode, names: Sequence[str]
    ) -> dict[str, Any]:
        o = self.options
        body: dict[str, Any] = {"model": o.model, "messages": messages}
        body[self.max_tokens_field] = o.max_tokens
        for name in ("temperature", "top_p", "seed"):
            value = getattr(o, name)
            if value is not None:
                body[name] = value
        fmt = response_format(mode, names)
        if fmt is not None:
            body["response_format"] = fmt
        if o.extra_body:
            body["extra_body"] = dict(o.extra_body)
        return body

    async def _complete(
        self,
        client: openai.AsyncOpenAI,
        messages: list[Message],
        mode: StructuredMode,
        names: Sequence[str],
    ) -> RawAnswer:
        response = await client.chat.completions.create(**self._request(messages, mode, names))
        return self._answer(response)

    def _answer(self, response: Any) -> RawAnswer:
        """Pull text and usage out defensively: the SDK does not validate bodies strictly."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise ModelResponseError(
                f"{self.provider}: the response has no choices", provider=self.provider
            )
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            raise ModelResponseError(
                f"{self.provider}: the answer content is not text", provider=self.provider
            )
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        return RawAnswer(
            text=content or "",
            input_tokens=prompt if isinstance(prompt, int) else None,
            output_tokens=completion if isinstance(completion, int) else None,
        )


class OpenAICompatibleAgent(OpenAIChatAgent):
    """vLLM, Ollama, llama.cpp server: ``max_tokens``; ``auto`` tries the JSON schema form,
    then the llama.cpp ``json_object``-with-schema form, then free text."""

    provider = "openai-compatible"
    auto_modes = (StructuredMode.JSON_SCHEMA, StructuredMode.JSON_OBJECT, StructuredMode.OFF)
    max_tokens_field = "max_tokens"
