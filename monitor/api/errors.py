"""Every error the API returns is a small JSON body naming the field; none echoes input.

Request bodies hold prompts, so neither error bodies nor logs ever include request data:
pydantic errors are reduced to their location and message (its ``input`` and ``ctx``
are dropped), and unexpected exceptions are logged by type only, never with a traceback
that could carry locals. Redis failures become 503 so that callers retry instead of
treating the monitor as broken.
"""

import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def strict_dumps(value: Any) -> str:
    """JSON that every parser reads: a NaN or an infinity raises instead of being written
    as the literal ``NaN`` (which ``JSON.parse`` refuses, breaking the live page)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def json_response(body: Any, *, status: int = 200, headers: Any = None) -> web.Response:
    """Every JSON answer of the API goes through the strict encoder."""
    return web.json_response(body, status=status, headers=headers, dumps=strict_dumps)


class ApiError(Exception):
    """An error with an HTTP status, a stable code, the field concerned and a message."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return json_response(body, status=self.status, headers=self.headers)


class Unavailable(ApiError):
    """Redis (or the detectors) cannot be reached within the bound: retry later."""

    def __init__(self, message: str = "redis unavailable") -> None:
        super().__init__(503, "unavailable", message)


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """422 naming the first invalid field; the others listed, without any input value."""
    errors = [{"field": prefix + _loc(e["loc"]), "message": e["msg"]} for e in exc.errors()[:20]]
    first = errors[0] if errors else {"field": prefix or "body", "message": "invalid"}
    return ApiError(422, "validation_error", first["message"], first["field"], errors=errors)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except ValidationError as exc:
        return validation_error(exc).response()
    except (RedisError, OSError, TimeoutError) as exc:
        name = type(exc).__name__
        log.warning("%s %s: redis unavailable (%s)", request.method, request.path, name)
        return Unavailable().response()
    except web.HTTPRequestEntityTooLarge as exc:
        message = exc.text or "request body too large"
        return ApiError(413, "body_too_large", message, "body").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_response(
            {"error": code, "message": exc.reason}, status=exc.status, headers=_allow(exc)
        )
    except Exception as exc:  # never a traceback (it could hold prompts) in a reply
        tb = traceback.extract_tb(exc.__traceback__)[-1:]  # where, never what (no message)
        where = f"{tb[0].filename}:{tb[0].lineno}" if tb else "?"
        log.error("%s %s failed: %s at %s", request.method, request.path, type(exc).__name__, where)
        return json_response({"error": "internal", "message": "internal error"}, status=500)


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
