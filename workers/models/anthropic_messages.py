"""Anthropic Messages API (``/v1/messages``) through the official async SDK.

Why the reshaping: the Messages API takes the system prompt in ``system=``, not as a
message, and wants strictly alternating user/assistant turns starting with the user.
Mitigations may insert extra user messages (reminders) or restore a history ending
oddly, so consecutive same-role messages are merged rather than rejected by the API.
Structured answers use ``output_config.format`` (a JSON schema; numeric bounds left
out, which the API does not take). Sampling settings are no longer parameters of this
SDK's ``messages.create`` (newer models fix them), so when configured they travel in
the request body, and models that refuse them answer 400 (not retried).
"""

from collections.abc import Sequence
from typing import Any

import anthropic

from workers.agents.base import Message
from workers.models.agent import ModelAgent, RawAnswer
from workers.models.errors import ModelResponseError
from workers.models.structured import StructuredMode, answer_schema


def to_anthropic(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, str]]]:
    """Split out the system prompt and merge same-role neighbours; drop leading answers."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    turns: list[dict[str, str]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if not turns and m["role"] != "user":
            continue
        if turns and turns[-1]["role"] == m["role"]:
            turns[-1]["content"] += "\n\n" + m["content"]
        else:
            turns.append({"role": m["role"], "content": m["content"]})
    return system, turns


class AnthropicAgent(ModelAgent):
    """Claude models; SDK retries off, the shared policy retries (429, 529 overloaded, 5xx)."""

    provider = "anthropic"
    auto_modes = (StructuredMode.JSON_SCHEMA, StructuredMode.OFF)

    def _make_client(self, api_key: str | None) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=self.options.base_url,
            max_retries=0,
            timeout=self.options.retry.attempt_timeout_s + 5.0,
        )

    async def _complete(
        self,
        client: anthropic.AsyncAnthropic,
        messages: list[Message],
        mode: StructuredMode,
        names: Sequence[str],
    ) -> RawAnswer:
        system, turns = to_anthropic(messages)
        o = self.options
        body: dict[str, Any] = {"model": o.model, "max_tokens": o.max_tokens, "messages": turns}
        if system is not None:
            body["system"] = system
        if mode is StructuredMode.JSON_SCHEMA:
            schema = answer_schema(names)
            for prop in schema["properties"].values():
                prop.pop("minimum", None)
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        sampling: dict[str, Any] = {}
        if o.temperature is not None:
            sampling["temperature"] = min(o.temperature, 1.0)  # Anthropic's range is 0..1
        if o.top_p is not None:
            sampling["top_p"] = o.top_p
        if sampling:
            body["extra_body"] = sampling
        response = await client.messages.create(**body)
        return self._answer(response)

    def _answer(self, response: Any) -> RawAnswer:
        blocks = getattr(response, "content", None)
        if not isinstance(blocks, list):
            raise ModelResponseError(
                "anthropic: the response has no content blocks", provider=self.provider
            )
        texts = [getattr(b, "text", None) for b in blocks if getattr(b, "type", None) == "text"]
        text = "".join(t for t in texts if isinstance(t, str))
        usage = getattr(response, "usage", None)
        inp = getattr(usage, "input_tokens", None)
        out = getattr(usage, "output_tokens", None)
        return RawAnswer(
            text=text,
            input_tokens=inp if isinstance(inp, int) else None,
            output_tokens=out if isinstance(out, int) else None,
        )
