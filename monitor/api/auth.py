"""Bearer-token auth for the write and control endpoints, and the bind-address guard.

When ``RUNAWAY_API_TOKEN`` is set, every request under ``/v1/`` (episodes, their steps,
flips, totals, the event feed: they show what agents saw and did) and every request that
changes state needs ``Authorization: Bearer <token>``: 401 when it is missing or not a
bearer token, 403 when the token is wrong. The page itself (``/``, its static files),
``/openapi.json``, ``/metrics`` and the probes stay open: they hold no episode data, and
the page asks for the token once and sends it in the header, never in a URL. A service
without a token may only listen on loopback: anyone who can reach it could reset agents.
"""

import hmac
import ipaddress

from aiohttp import web

from monitor.api.errors import ApiError, Handler

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def auth_middleware(token: str | None) -> web.middleware:  # type: ignore[valid-type]
    expected = token.encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or (
            request.method in READ_METHODS and not request.path.startswith("/v1/")
        ):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            err = ApiError(401, "unauthorized", "a bearer token is required", "Authorization")
            err.headers["WWW-Authenticate"] = 'Bearer realm="runaway-monitor"'
            raise err
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(403, "forbidden", "the bearer token is not valid", "Authorization")
        return await handler(request)

    return middleware


def is_loopback(host: str) -> bool:
    """True for hosts that only this machine can reach (``localhost``, 127/8, ::1)."""
    if host in ("localhost", "") or host.startswith("unix:"):
        return host != ""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ValueError says why)."""
    if not token and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host!r} without RUNAWAY_API_TOKEN: set a token or use "
            "127.0.0.1"
        )
