"""``runaway-monitor detector``: score the steps streams of ``REDIS_URL`` until SIGTERM."""

import argparse
import asyncio
import logging
import sys

from detectors.service import DetectorService
from monitor.cli_settings import settings_from
from monitor.runtime import STOP_GRACE_S, metrics_endpoint, run, setup_logging
from schemas.metrics import DetectorMetrics
from schemas.redis_io import connect, consumer_name
from schemas.settings import Settings

log = logging.getLogger("runaway.detector")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("detector", help="score steps and send recoveries (needs REDIS_URL)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args, metrics_port="--metrics-port")
    if not settings.redis_url:
        print("error: the detector needs REDIS_URL (shared with workers)", file=sys.stderr)
        return 2
    setup_logging()
    return run(lambda stop: serve(settings, stop), grace_s=settings.shutdown_grace_s + STOP_GRACE_S)


async def serve(settings: Settings, stop: asyncio.Event) -> int:
    redis = connect(settings.redis_url or "")
    metrics = DetectorMetrics()
    service = DetectorService(redis, settings, metrics, name=consumer_name("detector"))
    log.info("detector %s over %d shards", service.name, settings.shards)
    try:
        async with metrics_endpoint(
            metrics.registry, settings.metrics_port, settings.metrics_host, service.readiness
        ):
            await service.run(stop)
    finally:
        await redis.aclose()
    return 0
