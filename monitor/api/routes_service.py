"""Service endpoints: the live page, OpenAPI, Prometheus metrics, liveness and readiness."""

from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.errors import json_response
from monitor.api.health import probe
from monitor.api.openapi import openapi_document
from monitor.api.state import FEED, HEALTH, METRICS, REDIS, SETTINGS

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def index(_: web.Request) -> web.Response:
    return web.Response(
        body=(STATIC / "index.html").read_bytes(),
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:",
            "Cache-Control": "no-cache",
        },
    )


async def openapi(_: web.Request) -> web.Response:
    return json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """The process is alive, its loop answers and its in-process tasks (the detector) can
    be kept running: 503 naming the problems otherwise. Says nothing about Redis."""
    problems = request.app[HEALTH].problems
    if problems:
        return json_response({"status": "failing", "problems": dict(problems)}, status=503)
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when Redis, the detector group, its lag and a detector heartbeat are fine."""
    result = await probe(request.app[REDIS], request.app[SETTINGS])
    if result.ready and not request.app[FEED].healthy:
        result.ready = False
        result.reasons.append("live feed not reading yet")
    return json_response(result.body(), status=200 if result.ready else 503)
