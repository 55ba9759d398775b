"""A small client for the sidecar, so an agent loop integrates in a few lines.

``Monitor`` is synchronous (standard library only, for plain scripts and sync SDKs);
``AsyncMonitor`` uses aiohttp. Both raise :class:`MonitorError` with the service's error
code and field on a 4xx/5xx answer, and on an answer that does not follow the API's
schema or no answer at all (it raises nothing else); timeouts are bounded (the step timeout of the
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
    """The service's answer to one step: the API's ``StepVerdict``, field for field."""

    episode_id: str
    step: int
    verdict: str
    savepoint_step: int | None
    runaway_index: float
    flags: list[str] = field(default_factory=list)
    hazard: float = 0.0
    detections: list[str] = field(default_factory=list)
    reminder: str | None = None
    reason: str | None = None
    command_id: str | None = None
    fail_mode: str | None = None
    cause: str | None = None
    policy: str | None = None
    latency_ms: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def reset(self) -> bool:
        return self.verdict == "reset"

    @property
    def remind(self) -> bool:
        return self.verdict == "remind"

    @property
    def block(self) -> bool:
        """Reject the pending tool call (``reason`` says why)."""
        return self.verdict == "block"

    @property
    def stop(self) -> bool:
        """End the agent's run (``reason`` says why)."""
        return self.verdict == "stop"

    @classmethod
    def from_json(cls, body: Any, status: int = 200) -> "StepResult":
        """The answer checked against the API's schema; :class:`MonitorError` when it is not."""
        if not isinstance(body, dict):
            raise _invalid(status, "body", "the answer is not a JSON object")
        values: dict[str, Any] = {}
        for name, (types, required) in _VERDICT_FIELDS.items():
            if name not in body:
                if required:
                    raise _invalid(status, name, "missing from the answer")
                continue
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, types):
                raise _invalid(status, name, f"has the wrong type ({type(value).__name__})")
            if isinstance(value, list) and not all(isinstance(x, str) for x in value):
                raise _invalid(status, name, "must be a list of strings")
            values[name] = float(value) if float in types and value is not None else value
        return cls(**values, raw=body)


_OPT_STR = (str, type(None))
_NUM = (int, float)
# field -> (accepted JSON types, required): exactly the API's StepVerdict
_VERDICT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "episode_id": ((str,), True),
    "step": ((int,), True),
    "verdict": ((str,), True),
    "savepoint_step": ((int, type(None)), True),
    "runaway_index": (_NUM, True),
    "flags": ((list,), True),
    "hazard": (_NUM, False),
    "detections": ((list,), False),
    "reminder": (_OPT_STR, False),
    "reason": (_OPT_STR, False),
    "cause": (_OPT_STR, False),
    "policy": (_OPT_STR, False),
    "command_id": (_OPT_STR, False),
    "fail_mode": (_OPT_STR, False),
    "latency_ms": (_NUM, False),
}


class MonitorError(RuntimeError):
    """Every failure of a call: an error answer (status and the service's code and
    field), an answer that does not follow the API's schema, or no answer at all
    (status 0: unreachable or timed out)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("error", "error"))
        self.field = body.get("field")
        self.body = body
        super().__init__(f"{status} {self.code}: {body.get('message', '')}")


def _invalid(status: int, name: str, message: str) -> MonitorError:
    body = {"error": "invalid_response", "field": name, "message": f"{name} {message}"}
    return MonitorError(status, body)


def _json_object(status: int, raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or MonitorError (a proxy's HTML page, a torn body)."""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise _invalid(status, "body", "is not JSON") from None
    if not isinstance(data, dict):
        raise _invalid(status, "body", "is not a JSON object")
    return data


def _register_body(environment: str | None, objectives: list[dict] | None, **extra: Any) -> dict:
    body: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if environment is not None:
        body["environment"] = environment
    if objectives is not None:
        body["objectives"] = objectives
    return body


def _step_body(step: int, observation: dict | None, action: dict | None, **extra: Any) -> dict:
    """The step's JSON; ``tool_calls`` may hold dicts or objects with ``model_dump``."""
    body: dict[str, Any] = {"step": step}
    if observation is not None:
        body["observation"] = observation
    if action is not None:
        body["action"] = action
    calls = extra.pop("tool_calls", None)
    if calls is not None:
        body["tool_calls"] = [c.model_dump() if hasattr(c, "model_dump") else c for c in calls]
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _episode_id(body: dict[str, Any]) -> str:
    value = body.get("episode_id")
    if not isinstance(value, str):
        raise _invalid(200, "episode_id", "missing from the answer")
    return value


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
                return _json_object(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except (ValueError, OSError):
                detail = None
            raise MonitorError(exc.code, detail if isinstance(detail, dict) else {}) from None
        except (OSError, ValueError) as exc:  # refused, reset, timed out, a torn answer
            message = f"no answer from {self.url}: {type(exc).__name__}"
            raise MonitorError(0, {"error": "unreachable", "message": message}) from None

    def register(
        self, environment: str | None = None, objectives: list[dict] | None = None, **extra: Any
    ) -> str:
        """Register an episode; its id. ``extra``: episode_id, detector, policy, fail_mode,
        labels."""
        return _episode_id(
            self._post("/v1/episodes", _register_body(environment, objectives, **extra))
        )

    def step(
        self,
        episode_id: str,
        step: int,
        observation: dict[str, float] | None = None,
        action: dict[str, float] | None = None,
        **extra: Any,
    ) -> StepResult:
        """Report one step; the verdict. ``extra``: rewards, text, tool_calls
        (``[{"name": ..., "arguments": {...}, "result": ...}]``), state (agent state JSON)."""
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
        import aiohttp

        try:
            async with self._session.post(self.url + path, json=body) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            message = f"no answer from {self.url}: {type(exc).__name__}"
            raise MonitorError(0, {"error": "unreachable", "message": message}) from None
        if status >= 400:
            try:
                detail = json.loads(raw or b"{}")
            except ValueError:
                detail = None
            raise MonitorError(status, detail if isinstance(detail, dict) else {})
        return _json_object(status, raw)

    async def register(
        self, environment: str | None = None, objectives: list[dict] | None = None, **extra: Any
    ) -> str:
        body = _register_body(environment, objectives, **extra)
        return _episode_id(await self._post("/v1/episodes", body))

    async def step(
        self,
        episode_id: str,
        step: int,
        observation: dict[str, float] | None = None,
        action: dict[str, float] | None = None,
        **extra: Any,
    ) -> StepResult:
        body = _step_body(step, observation, action, **extra)
        return StepResult.from_json(await self._post(f"/v1/episodes/{episode_id}/steps", body))

    async def finish(self, episode_id: str, reason: str = "done") -> None:
        await self._post(f"/v1/episodes/{episode_id}/finish", {"reason": reason})
