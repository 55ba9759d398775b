"""Scripted tool-calling answers for :class:`tests.fakes.model_server.FakeModelServer`.

``tool_call(name, arguments)`` answers a Chat Completions request with one tool call
(``finish_reason: tool_calls``), the way an OpenAI-compatible server asks an agent
framework to run a tool; a looping agent is a script of the same call again and again.
"""

import itertools
import json
from typing import Any

from aiohttp import web

from tests.fakes.model_server import Behaviour, FakeModelServer, RecordedRequest

_ids = itertools.count(1)


def tool_call(name: str, arguments: dict[str, Any]) -> Behaviour:
    """Answer with a request to call tool ``name`` with ``arguments``."""

    async def behave(server: FakeModelServer, req: RecordedRequest) -> web.StreamResponse:
        call = {
            "id": f"call_{next(_ids)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return web.json_response({
            "id": "chatcmpl-fake-tool", "object": "chat.completion", "created": 0,
            "model": req.body.get("model", "fake"),
            "choices": [{
                "index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
            }],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        })  # fmt: skip

    return behave
