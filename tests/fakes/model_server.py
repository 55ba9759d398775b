"""A local HTTP server speaking the OpenAI and Anthropic wire protocols, for tests.

Why real HTTP: the provider agents must be tested through the real SDKs (headers,
timeouts, status handling, body parsing), not through mocks of them. The server records
every request (path, headers, JSON body, arrival time), so tests can assert what the
model actually received: the context after truncation, mitigations' reminders, keys.

Script answers with :meth:`FakeModelServer.push` (consumed in order); when the script
is empty, ``default`` answers. Behaviours: :func:`text`, :func:`json_answer`,
:func:`status`, :func:`sleep`, :func:`held`, :func:`raw`, :func:`respond_with`,
:func:`tool_calls`.

Use the ``fake_model_server`` fixture (registered in ``tests/conftest.py``).
"""

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it."""

    protocol: str  # "openai" or "anthropic"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # loop time of arrival

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system(self) -> str | None:
        """The system prompt, wherever the protocol puts it."""
        if self.protocol == "anthropic":
            return self.body.get("system")
        for m in self.messages:
            if m.get("role") == "system":
                return m.get("content")
        return None


Behaviour = Callable[["FakeModelServer", RecordedRequest], Awaitable[web.StreamResponse]]


def _success(req: RecordedRequest, content: str, usage: bool) -> web.Response:
    if req.protocol == "anthropic":
        body: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": req.body.get("model", "fake"),
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        }
        if usage:
            body["usage"] = {"input_tokens": 11, "output_tokens": 3}
        return web.json_response(body)
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": req.body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    return web.json_response(body)


def text(content: str, *, usage: bool = True) -> Behaviour:
    """Answer with this text (and usage 11 in / 3 out unless ``usage=False``)."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        return _success(req, content, usage)

    return behave


def json_answer(obj: Any, *, usage: bool = True) -> Behaviour:
    """Answer with ``obj`` serialised as the message text (a structured answer)."""
    return text(json.dumps(obj), usage=usage)


def respond_with(fn: Callable[[RecordedRequest], str], *, usage: bool = True) -> Behaviour:
    """Answer with ``fn(request)``: for answers that depend on what was asked."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        return _success(req, fn(req), usage)

    return behave


def tool_calls(*calls: tuple[str, dict[str, Any]], content: str | None = None) -> Behaviour:
    """Answer (Chat Completions) with these ``(name, arguments)`` tool calls, ids unique."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        n = len(server.requests)
        message = {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(calls)
            ],
        }
        body = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": req.body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
        return web.json_response(body)

    return behave


def status(
    code: int, *, headers: dict[str, str] | None = None, message: str = "fake error"
) -> Behaviour:
    """Fail with HTTP ``code`` and the provider's error body shape."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        if req.protocol == "anthropic":
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            body = {"error": {"message": message, "type": "server_error", "code": None}}
        return web.json_response(body, status=code, headers=headers)

    return behave


def raw(body: str, *, code: int = 200, content_type: str = "application/json") -> Behaviour:
    """Answer with this body verbatim (malformed answers)."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        return web.Response(text=body, status=code, content_type=content_type)

    return behave


def sleep(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Hang for ``seconds`` (cut short when the server closes), then behave like ``then``."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        try:
            await asyncio.wait_for(server.closing.wait(), timeout=seconds)
        except TimeoutError:
            pass
        return await (then or text("0"))(server, req)

    return behave


def held(release: asyncio.Event, then: Behaviour) -> Behaviour:
    """Hold the answer until the test sets ``release`` (or the server closes), then behave
    like ``then``: to look at a run while it waits for its model."""

    async def behave(server: "FakeModelServer", req: RecordedRequest) -> web.StreamResponse:
        waits = [asyncio.ensure_future(e.wait()) for e in (release, server.closing)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return await then(server, req)

    return behave


@dataclass
class FakeModelServer:
    """OpenAI ``/v1/chat/completions`` and Anthropic ``/v1/messages`` on 127.0.0.1."""

    default: Behaviour = field(default_factory=lambda: text("0, 0"))
    requests: list[RecordedRequest] = field(default_factory=list)
    script: deque[Behaviour] = field(default_factory=deque)
    host: str = "127.0.0.1"
    port: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Event = field(default_factory=asyncio.Event)  # set on every request
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def push(self, *behaviours: Behaviour) -> None:
        """Queue answers for the next requests, in order."""
        self.script.extend(behaviours)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        protocol = "anthropic" if request.path == ANTHROPIC_PATH else "openai"
        try:
            body = await request.json()
        except ValueError:
            body = {}
        recorded = RecordedRequest(
            protocol=protocol,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=asyncio.get_running_loop().time(),
        )
        self.requests.append(recorded)
        self.received.set()
        behaviour = self.script.popleft() if self.script else self.default
        return await behaviour(self, recorded)

    async def start(self) -> "FakeModelServer":
        app = web.Application()
        app.router.add_post(OPENAI_PATH, self._handle)
        app.router.add_post(ANTHROPIC_PATH, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def fake_model_server() -> AsyncIterator[FakeModelServer]:
    """A started :class:`FakeModelServer`, closed after the test."""
    server = await FakeModelServer().start()
    try:
        yield server
    finally:
        await server.close()
