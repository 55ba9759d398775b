"""A small client for the sidecar, so an agent loop integrates in a few lines.

``Monitor`` is synchronous (standard library only, for plain scripts and sync SDKs);
``AsyncMonitor`` uses aiohttp. Both raise :class:`MonitorError` with the service's error
code and field on a 4xx/5xx answer; timeouts are bounded (the step timeout of the
service plus a margin).

    mon = Monitor("http://127.0.0.1:8321")
    episode = mon.register(environment="multiobjective-homeostasis")
    verdict = mon.step(episode, step=1, observation={"A": 113, "B": 131},
                       action={"A": 0, "B": 7})
    if verdict.reset:
        ...  # restore the agent's context as of verdict.savepoint_step, add the reminder
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """The service's answer to one step (see the API's StepVerdict)."""

    verdict: str
    savepoint_step: int | None
    runaway_index: float
    flags: list[str] = field(default_factory=list)
    reminder: str | None = None
    fail_mode: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def reset(self) -> bool:
        return self.verdict == "reset"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "StepResult":
        return cls(
            verdict=body["verdict"],
            savepoint_step=body.get("savepoint_step"),
            runaway_index=float(body.get("runaway_index", 0.0)),
            flags=list(body.get("flags", [])),
            reminder=body.get("reminder"),
            fail_mode=body.get("fail_mode"),
            raw=body,
        )


class MonitorError(RuntimeError):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("error", "error"))
        self.field = body.get("field")
        self.body = body
        super().__init__(f"{status} {self.code}: {body.get('message', '')}")


def _register_body(environment: str | None, objectives: list[dict] | None, **extra: Any) -> dict:
    body: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if environment is not None:
        body["environment"] = environment
    if objectives is not None:
        body["objectives"] = objectives
    return body


def _step_body(step: int, observation: dict, action: dict, **extra: Any) -> dict:
    body = {"step": step, "observation": observation, "action": action}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


class Monitor:
    """Synchronous client (``urllib``); one instance per agent process is enough."""

    def __init__(
        self, url: str = "http://127.0.0.1:8321", token: str | None = None, timeout_s: float = 35.0
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            raise MonitorError(exc.code, detail) from None

    def register(
        self, environment: str | None = None, objectives: list[dict] | None = None, **extra: Any
    ) -> str:
        """Register an episode; its id. ``extra``: episode_id, detector, fail_mode, labels."""
        return self._post("/v1/episodes", _register_body(environment, objectives, **extra))[
            "episode_id"
        ]

    def step(
        self,
        episode_id: str,
        step: int,
        observation: dict[str, float],
        action: dict[str, float],
        **extra: Any,
    ) -> StepResult:
        """Report one step; the verdict. ``extra``: rewards, text."""
        body = _step_body(step, observation, action, **extra)
        return StepResult.from_json(self._post(f"/v1/episodes/{episode_id}/steps", body))

    def finish(self, episode_id: str, reason: str = "done") -> None:
        self._post(f"/v1/episodes/{episode_id}/finish", {"reason": reason})


class AsyncMonitor:
    """The same calls for asyncio agents (aiohttp); use as ``async with``."""

    def __init__(
        self, url: str = "http://127.0.0.1:8321", token: str | None = None, timeout_s: float = 35.0
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._session: Any = None

    async def __aenter__(self) -> "AsyncMonitor":
        import aiohttp

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._session.post(self.url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise MonitorError(resp.status, data or {})
            return data

    async def register(
        self, environment: str | None = None, objectives: list[dict] | None = None, **extra: Any
    ) -> str:
        body = _register_body(environment, objectives, **extra)
        return (await self._post("/v1/episodes", body))["episode_id"]

    async def step(
        self,
        episode_id: str,
        step: int,
        observation: dict[str, float],
        action: dict[str, float],
        **extra: Any,
    ) -> StepResult:
        body = _step_body(step, observation, action, **extra)
        return StepResult.from_json(await self._post(f"/v1/episodes/{episode_id}/steps", body))

    async def finish(self, episode_id: str, reason: str = "done") -> None:
        await self._post(f"/v1/episodes/{episode_id}/finish", {"reason": reason})
