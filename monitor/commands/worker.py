"""``runaway-monitor worker``: run episode jobs from ``REDIS_URL`` until SIGTERM."""

import argparse
import asyncio
import logging
import sys

from monitor.cli_settings import settings_from
from monitor.runtime import STOP_GRACE_S, metrics_endpoint, run, setup_logging
from schemas.metrics import WorkerMetrics
from schemas.redis_io import connect, consumer_name
from schemas.settings import Settings
from workers.worker import Worker

log = logging.getLogger("runaway.worker")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("worker", help="run episode jobs (needs REDIS_URL)")
    p.add_argument("--concurrency", type=int, help="episodes at once (RUNAWAY_CONCURRENCY)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args, concurrency="--concurrency", metrics_port="--metrics-port")
    if not settings.redis_url:
        print(
            "error: the worker needs REDIS_URL (shared with detectors); "
            "'runaway-monitor demo' runs everything on a private server",
            file=sys.stderr,
        )
        return 2
    setup_logging()
    return run(lambda stop: serve(settings, stop), grace_s=settings.shutdown_grace_s + STOP_GRACE_S)


async def serve(settings: Settings, stop: asyncio.Event) -> int:
    redis = connect(settings.redis_url or "")
    metrics = WorkerMetrics()
    worker = Worker(redis, settings, metrics, name=consumer_name("worker"))
    log.info("worker %s: up to %d episodes at once", worker.name, settings.concurrency)
    try:
        async with metrics_endpoint(
            metrics.registry, settings.metrics_port, settings.metrics_host, worker.readiness
        ):
            await worker.run(stop)
    finally:
        await redis.aclose()
    log.info("worker stopped after %d episodes", len(worker.results))
    return 0
