"""Browser-safety checks: what keeps a web page the user happens to visit from writing to
(or, by DNS rebinding, reading) a sidecar on loopback.

A cross-site page can send "simple" requests (``text/plain`` or form bodies) without a
preflight, and a rebinding page reaches ``127.0.0.1`` under its own host name. So, before
the token check:

- without a token, only loopback ``Host`` names are served (``localhost``, ``127.0.0.1``,
  ``[::1]``, any port; ``RUNAWAY_ALLOWED_HOSTS`` adds names): anything else is 421;
- a request whose ``Origin`` is not this service's own (nor in
  ``RUNAWAY_ALLOWED_ORIGINS``) is 403, as is one a browser marks ``Sec-Fetch-Site:
  cross-site`` (top-level navigations to the page excepted);
- a request with a (non-empty) body must say ``Content-Type: application/json`` (or
  ``application/x-protobuf``, OTLP's, on ``/v1/traces``) (415 otherwise): neither is a
  type a browser sends without a preflight, so no simple cross-site request carries one.
"""

from urllib.parse import urlsplit

from aiohttp import web

from monitor.api.auth import READ_METHODS
from monitor.api.errors import ApiError, Handler
from schemas.settings import Settings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
BODY_TYPES = {"/v1/traces": frozenset({"application/json", "application/x-protobuf"})}
JSON_ONLY = frozenset({"application/json"})


def host_name(host: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8321`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _names(csv: str) -> frozenset[str]:
    return frozenset(host_name(h) for h in csv.split(",") if h.strip())


def browser_middleware(settings: Settings, token: str | None) -> web.middleware:  # type: ignore[valid-type]
    hosts = None if token else LOOPBACK_HOSTS | _names(settings.allowed_hosts)
    origins = frozenset(
        o.strip().rstrip("/").lower() for o in settings.allowed_origins.split(",") if o.strip()
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if hosts is not None and host_name(host) not in hosts:
            raise ApiError(
                421,
                "misdirected_host",
                "without RUNAWAY_API_TOKEN only loopback host names are served "
                "(RUNAWAY_ALLOWED_HOSTS adds more)",
                "Host",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not _own(origin, host) and origin.lower() not in origins:
            raise ApiError(403, "foreign_origin", "requests from other sites are refused", "Origin")
        site, mode = request.headers.get("Sec-Fetch-Site"), request.headers.get("Sec-Fetch-Mode")
        navigation = request.method == "GET" and mode == "navigate"
        if site == "cross-site" and not navigation and origin is None:
            raise ApiError(403, "foreign_origin", "requests from other sites are refused", "Origin")
        if request.method not in READ_METHODS and request.body_exists:
            allowed = BODY_TYPES.get(request.path, JSON_ONLY)
            if request.content_type not in allowed:
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"a request body must have Content-Type {' or '.join(sorted(allowed))}",
                    "Content-Type",
                )
        return await handler(request)

    return middleware


def _own(origin: str, host: str) -> bool:
    """True when ``origin`` is this service as the request addressed it."""
    parts = urlsplit(origin.strip().lower())
    return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()
