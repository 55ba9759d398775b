"""OpenAI Chat Completions, for OpenAI itself and any OpenAI-compatible server.

Why one module for both: vLLM, Ollama and the llama.cpp server speak the same
``/v1/chat/completions`` protocol; they differ only in which structured-answer form they
accept and in parameter names, which the two subclasses below set.

Why ``client.post`` and not ``client.chat.completions.create``: create() walks every
message of the history through the SDK's TypedDict transform (a no-op for text messages)
and builds a pydantic ``ChatCompletion`` from the answer; at 40 messages that was
~8-16 ms of CPU a call, which made one worker process CPU-bound at ~100 calls/s. The
request is the very same (same path, JSON body with ``extra_body`` merged in at the top
level, headers, auth, timeout; ``tests/test_model_openai_request.py`` compares the two on
the wire), and errors still come as the SDK's exception classes.

The OpenAI-compatible agent goes one step further and posts the same body with aiohttp
itself (:class:`_DirectChat`): the SDK's generic request path still cost ~1 ms of CPU a
call. Its failures are classified by the same rules (``classify_http_error``).
"""

import functools
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Final

import openai
import orjson

from workers.agents.base import Message
from workers.models.agent import ModelAgent, RawAnswer
from workers.models.errors import (
    AttemptFailure,
    HTTPStatusFailure,
    ModelResponseError,
    classify_http_error,
)
from workers.models.structured import StructuredMode, response_format

PLACEHOLDER_KEY = "not-needed"  # local servers ignore it; the SDK insists on some key
CHAT_PATH: Final = "/chat/completions"
# the request options create() passes besides the body: the bearer key only (the SDK's
# default would add the admin key too, when one is configured)
_CHAT_OPTIONS: Final[Any] = {"security": {"bearer_auth": True}}


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The SSL context httpx would build for each client (same CA bundle and env)."""
    import httpx2

    return httpx2.create_ssl_context()


def _http_client(timeout: float) -> Any:
    """The SDK's aiohttp-backed HTTP client when the SDK has it, else its httpx default.

    Why aiohttp: the SDK offers it "for improved concurrency performance", and here it
    cut ~0.5-1 ms of CPU per call against httpcore's anyio streams (the request on the
    wire is the same: ``tests/test_model_openai_request.py`` sends both through one
    client). Either way with the process's one SSL context: building one (loading the CA
    bundle) cost ~45 ms of CPU per agent, i.e. per episode.
    """
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(timeout=timeout, verify=_ssl_context())
        except RuntimeError:  # the SDK was installed without its aiohttp support
            pass
    return openai.DefaultAsyncHttpxClient(timeout=timeout, verify=_ssl_context())


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
            http_client=_http_client(timeout),
        )

    def _request(
        self, messages: list[Message], mode: StructuredMode, names: Sequence[str]
    ) -> dict[str, Any]:
        """The JSON body; ``extra_body`` fields merged in on top, as create() merges them."""
        o = self.options
        body: dict[str, Any] = {"model": o.model, "messages": messages}
        body[self.max_tokens_field] = o.max_tokens
        for name in ("temperature", "top_p", "seed", "logit_bias"):
            value = getattr(o, name)
            if value is not None:
                body[name] = value
        fmt = response_format(mode, names)
        if fmt is not None:
            body["response_format"] = fmt
        if o.extra_body:
            body.update(o.extra_body)
        return body

    def _body(self, messages: list[Message], mode: StructuredMode, names: Sequence[str]) -> bytes:
        """:meth:`_request` as the JSON bytes that go on the wire."""
        return orjson.dumps(self._request(messages, mode, names), option=orjson.OPT_NON_STR_KEYS)

    async def _complete(
        self,
        client: openai.AsyncOpenAI,
        messages: list[Message],
        mode: StructuredMode,
        names: Sequence[str],
    ) -> RawAnswer:
        content = self._body(messages, mode, names)
        raw = await client.post(CHAT_PATH, content=content, cast_to=bytes, options=_CHAT_OPTIONS)
        return self._answer(orjson.loads(raw))  # not JSON: a ValueError, made clear by _attempt

    def _answer(self, response: Any) -> RawAnswer:
        """Pull text and usage out of the decoded body, trusting none of its shape."""
        choices = response.get("choices") if isinstance(response, Mapping) else None
        if not isinstance(choices, list) or not choices:
            raise ModelResponseError(
                f"{self.provider}: the response has no choices", provider=self.provider
            )
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if content is not None and not isinstance(content, str):
            raise ModelResponseError(
                f"{self.provider}: the answer content is not text", provider=self.provider
            )
        usage = response.get("usage")
        prompt = completion = None
        if isinstance(usage, Mapping):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return RawAnswer(
            text=content or "",
            input_tokens=prompt if _is_count(prompt) else None,
            output_tokens=completion if _is_count(completion) else None,
        )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _DirectChat:
    """POST /chat/completions with aiohttp, one session per agent, nothing else.

    Why not the SDK for these servers: even through ``client.post`` the SDK builds an
    httpx request (headers merged and normalised, the URL parsed) and converts it for
    its aiohttp transport, ~1 ms of CPU a call; a worker running hundreds of episodes
    against one vLLM or llama.cpp server spent most of its CPU there. These servers speak
    plain JSON over HTTP; the body is the one the SDK sends (same fields, ``extra_body``
    merged), with the same bearer header.
    """

    def __init__(self, base_url: str | None, api_key: str, timeout_s: float) -> None:
        import aiohttp

        self.url = (base_url or "").rstrip("/") + CHAT_PATH
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {api_key}",
        }
        ssl_context = _ssl_context() if self.url.startswith("https:") else None
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None,
        )

    async def chat(self, body: bytes) -> bytes:
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise HTTPStatusFailure(resp.status, resp.headers, raw)
            return raw

    async def close(self) -> None:
        await self.session.close()


class OpenAICompatibleAgent(OpenAIChatAgent):
    """vLLM, Ollama, llama.cpp server: ``max_tokens``; ``auto`` tries the JSON schema form,
    then the llama.cpp ``json_object``-with-schema form, then free text. Requests go out
    over aiohttp directly (:class:`_DirectChat`), not through the SDK."""

    provider = "openai-compatible"
    auto_modes = (StructuredMode.JSON_SCHEMA, StructuredMode.JSON_OBJECT, StructuredMode.OFF)
    max_tokens_field = "max_tokens"

    def _make_client(self, api_key: str | None) -> Any:
        timeout = self.options.retry.attempt_timeout_s + 5.0  # the policy's timeout fires first
        return _DirectChat(self.options.base_url, api_key or PLACEHOLDER_KEY, timeout)

    async def _complete(
        self, client: Any, messages: list[Message], mode: StructuredMode, names: Sequence[str]
    ) -> RawAnswer:
        return self._answer(orjson.loads(await client.chat(self._body(messages, mode, names))))

    def _classify(self, exc: Exception) -> AttemptFailure | None:
        return classify_http_error(exc, self._secrets)
