"""A scripted stand-in for the sidecar's ``/v1/episodes`` API, for integration tests.

Why: the framework integrations' job is to send the right steps and to apply each kind
of verdict; the verdicts that the real detectors give for a given run are the
detectors' tests. This server speaks the sidecar's wire shapes (the issue-14 contract:
steps with ``tool_calls``, ``text``, ``state``; verdicts ``continue``, ``remind``,
``reset``, ``block``, ``stop`` with ``reason``, ``cause``, ``reminder``), checks what it
gets the way the sidecar does (step order, a step carrying something), records every
body, and answers ``continue`` unless a verdict was scripted for that step.
"""

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


def verdict(
    kind: str,
    *,
    savepoint_step: int | None = None,
    reminder: str | None = None,
    reason: str | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """A scripted answer (the fields of the sidecar's StepVerdict that differ by kind)."""
    return {
        "verdict": kind,
        "savepoint_step": savepoint_step,
        "reminder": reminder,
        "reason": reason,
        "cause": cause,
    }


@dataclass
class FakeSidecar:
    """``POST /v1/episodes``, ``/v1/episodes/{id}/steps``, ``/finish`` on 127.0.0.1."""

    registered: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    finished: dict[str, str] = field(default_factory=dict)
    script: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> verdict
    port: int = 0
    _runner: web.AppRunner | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, step: int, body: dict[str, Any]) -> None:
        """Answer ``step`` (of any episode) with this verdict."""
        self.script[step] = body

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registered.append(body)
        episode_id = body.get("episode_id") or f"ep-fake-{next(self._ids)}"
        self.steps.setdefault(episode_id, [])
        return web.json_response({"episode_id": episode_id, "created": True}, status=201)

    async def _step(self, request: web.Request) -> web.Response:
        episode_id = request.match_info["episode_id"]
        if episode_id not in self.steps:
            return web.json_response({"error": "unknown_episode"}, status=404)
        body = await request.json()
        seen = self.steps[episode_id]
        expected = len(seen) + 1
        if body.get("step") != expected:
            return web.json_response(
                {"error": "step_gap", "expected_step": expected, "field": "step"}, status=409
            )
        if not (body.get("action") or body.get("tool_calls") or body.get("text")):
            return web.json_response({"error": "validation_error", "field": "action"}, status=422)
        seen.append(body)
        answer = {"verdict": "continue", "savepoint_step": expected, "reminder": None}
        answer.update(self.script.get(expected, {}))
        answer.update(
            episode_id=episode_id,
            step=expected,
            runaway_index=0.0,
            flags=[answer["cause"]] if answer.get("cause") else [],
        )
        return web.json_response(answer)

    async def _finish(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.finished[request.match_info["episode_id"]] = body.get("reason", "done")
        return web.json_response({"status": "finished"})

    async def start(self) -> "FakeSidecar":
        app = web.Application()
        app.router.add_post("/v1/episodes", self._register)
        app.router.add_post("/v1/episodes/{episode_id}/steps", self._step)
        app.router.add_post("/v1/episodes/{episode_id}/finish", self._finish)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None and site._server.sockets
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def fake_sidecar() -> AsyncIterator[FakeSidecar]:
    server = await FakeSidecar().start()
    try:
        yield server
    finally:
        await server.close()
