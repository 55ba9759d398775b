"""``runaway-monitor serve``: the sidecar HTTP service (API, live page, SSE, /metrics).

With no ``REDIS_URL`` it starts the embedded Redis and an in-process detector, so one
command gives a working sidecar. With ``REDIS_URL`` it relies on separate ``detector``
processes unless ``--with-detector`` asks for one in process. It refuses to listen beyond
loopback without ``RUNAWAY_API_TOKEN``. SIGTERM stops accepting, lets requests in flight
finish within ``RUNAWAY_SHUTDOWN_GRACE_S`` and ends the SSE streams.
"""

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from monitor.api import create_app
from monitor.api.auth import check_bind
from monitor.api.guard import ConnectionGuard, GuardedSite
from monitor.cli_settings import settings_from
from monitor.embedded_redis import redis_url_or_embedded
from monitor.runtime import STOP_GRACE_S, run, setup_logging
from schemas.settings import Settings

log = logging.getLogger("runaway.serve")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("serve", help="run the sidecar HTTP service (verdicts, live page)")
    p.add_argument("--host", help="listen address (default RUNAWAY_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default RUNAWAY_PORT or 8321)")
    p.add_argument(
        "--with-detector",
        action="store_true",
        help="run a detector in this process also when REDIS_URL is set",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args, host="--host", port="--port")
    token = settings.api_token.get_secret_value() if settings.api_token else None
    try:
        check_bind(settings.host, token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging()
    with_detector = args.with_detector or not settings.redis_url
    return run(
        lambda stop: serve(settings, stop, with_detector=with_detector),
        grace_s=settings.shutdown_grace_s + STOP_GRACE_S,
    )


async def serve(settings: Settings, stop: asyncio.Event, *, with_detector: bool) -> int:
    async with redis_url_or_embedded(settings.redis_url) as url:
        app = create_app(
            settings.model_copy(update={"redis_url": url}), with_detector=with_detector
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=settings.shutdown_grace_s,
            keepalive_timeout=settings.header_timeout_s,
        )
        await runner.setup()
        try:
            guard = ConnectionGuard(settings.header_timeout_s, settings.max_connections)
            site = GuardedSite(runner, settings.host, settings.port, guard)
            await site.start()
            where = "embedded Redis" if not settings.redis_url else "REDIS_URL"
            detector = "in-process detector" if with_detector else "external detectors"
            log.info(
                "serving on http://%s:%d (%s, %s)", settings.host, settings.port, where, detector
            )
            await stop.wait()
        finally:
            await runner.cleanup()
    return 0
