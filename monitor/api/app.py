"""The aiohttp application factory of the sidecar service.

``create_app(settings)`` builds the app without touching the event loop; Redis clients,
the live feed, the readiness watcher and (when asked) an in-process detector are started
in ``cleanup_ctx`` generators and cancelled and awaited after their ``yield``, in reverse
order. The request path and the feed use separate Redis pools, so blocking reads of the
feed never take a connection a request needs.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.api import (
    routes_episodes,
    routes_litellm,
    routes_otlp,
    routes_service,
    routes_views,
    sse,
)
from monitor.api.auth import auth_middleware
from monitor.api.browser import browser_middleware
from monitor.api.errors import Handler, error_middleware
from monitor.api.feed import Feed
from monitor.api.health import watch
from monitor.api.hub import Hub
from monitor.api.metrics import ApiMetrics
from monitor.api.state import FEED, HEALTH, HUB, METRICS, REDIS, SETTINGS, STORE, WAITERS
from monitor.api.store import EpisodeStore
from monitor.api.supervise import Health, Supervisor
from monitor.api.verdicts import Waiters
from schemas.episode import FailMode
from schemas.metrics import DetectorMetrics, child
from schemas.redis_io import connect
from schemas.settings import Settings

log = logging.getLogger(__name__)
# the OTel GenAI exporter (monitor.integrations.otel), when configured; Any: the core
# does not import the otel extra
TELEMETRY = web.AppKey("telemetry", Any)


def create_app(
    settings: Settings,
    *,
    with_detector: bool = False,
    registry: CollectorRegistry | None = None,
    telemetry: Any = None,
) -> web.Application:
    """The service for ``settings`` (``redis_url`` must be set: serve resolves it first).

    ``telemetry``: an exporter with ``on_events``, ``remember`` and ``shutdown`` (default: the OTel
    GenAI export when an OTLP endpoint is configured, else none)."""
    if not settings.redis_url:
        raise ValueError("create_app needs settings.redis_url (serve starts an embedded one)")
    token = settings.api_token.get_secret_value() if settings.api_token else None
    metrics = ApiMetrics(registry or CollectorRegistry())
    for mode in FailMode:
        metrics.fail_mode_setting.labels(mode.value).set(1 if mode is settings.fail_mode else 0)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            error_middleware,
            _metrics_middleware(metrics),
            browser_middleware(settings, token),
            auth_middleware(token),
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[HUB] = Hub(settings.sse_max_streams, settings.sse_per_client)
    app[WAITERS] = Waiters()
    app[TELEMETRY] = telemetry if telemetry is not None else _telemetry(settings)
    app[HEALTH] = Health()
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_background_ctx)
    if with_detector:
        app.cleanup_ctx.append(_detector_ctx)
    app.on_shutdown.append(_close_streams)
    routes_episodes.setup(app)
    routes_views.setup(app)
    sse.setup(app)
    routes_service.setup(app)
    routes_otlp.setup(app)
    routes_litellm.setup(app)
    return app


def _telemetry(settings: Settings) -> Any:
    """The OTLP GenAI exporter when ``OTEL_EXPORTER_OTLP_*`` names an endpoint, else None."""
    if not settings.otel_endpoint or settings.otel_sdk_disabled:
        return None
    if _points_at_self(settings.otel_endpoint, settings):
        log.warning("the OTLP endpoint is this sidecar: no export (its spans would be steps)")
        return None
    try:
        from monitor.integrations.otel import GenAIExporter
    except ImportError:
        log.warning("an OTLP endpoint is set but the otel extra is not installed: no export")
        return None
    return GenAIExporter.from_environment()


def _points_at_self(endpoint: str, settings: Settings) -> bool:
    """Whether the export would reach this sidecar's own ``/v1/traces`` (a feedback loop)."""
    try:
        url = urlsplit(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return False
    local = {settings.host, "127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}
    return port == settings.port and (url.hostname or "") in local


def _metrics_middleware(metrics: ApiMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception as exc:
            status = getattr(exc, "status", 500)
            raise
        finally:
            child(metrics.http_requests, request.method, name, str(status)).inc()
            if name != "/v1/events":
                child(metrics.http_duration, request.method, name).observe(
                    time.perf_counter() - started
                )

    return middleware


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = connect(settings.redis_url or "")
    app[REDIS] = redis
    store = app[STORE] = EpisodeStore(redis, settings)
    try:
        yield
    finally:  # the store keeps a connection of its own: give it back first, whatever happens
        try:
            await asyncio.shield(store.aclose())
        finally:
            await redis.aclose()


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    feed_redis = connect(settings.redis_url or "", max_connections=settings.shards + 4)
    feed = app[FEED] = Feed(feed_redis, settings, app[WAITERS], app[HUB], app[METRICS])
    telemetry = app[TELEMETRY]
    feed.telemetry = telemetry
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(feed.run(stop), name="feed"),
        asyncio.create_task(watch(app[REDIS], settings, app[METRICS], stop), name="readiness"),
    ]
    yield
    stop.set()
    await _stop(tasks, settings.block_ms / 1000 + 2)
    await feed_redis.aclose()
    if telemetry is not None:  # flushes what is queued (blocking: in a thread)
        await asyncio.to_thread(telemetry.shutdown)


async def _detector_ctx(app: web.Application) -> AsyncIterator[None]:
    """The in-process detector, supervised: restarted (a fresh one, its episodes reloaded
    from their checkpoints) whenever it fails; /healthz fails while it cannot be kept up."""
    from detectors.service import DetectorService

    settings = app[SETTINGS]
    redis = connect(settings.redis_url or "")
    metrics = DetectorMetrics(app[METRICS].registry)

    def fresh() -> Callable[[asyncio.Event], Awaitable[None]]:
        return DetectorService(redis, settings, metrics).run

    supervisor = Supervisor("detector", fresh, app[HEALTH], app[METRICS].task_restarts)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop), name="detector")
    yield
    stop.set()
    await _stop([task], settings.shutdown_grace_s + 5)
    await redis.aclose()


async def _stop(tasks: list[asyncio.Task[None]], grace_s: float) -> None:
    """Let tasks end by themselves within ``grace_s``, then cancel; never raise."""
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for t in pending:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


async def _close_streams(app: web.Application) -> None:
    app[HUB].close_all()
