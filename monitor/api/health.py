"""Readiness and the consumer-group gauges: is Redis there, and are detectors keeping up?

``/readyz`` is ready when Redis answers within the bound, every steps stream has the
``detectors`` consumer group, no shard has more than ``ready_max_lag`` unread steps, and
at least one detector's heartbeat is fresh. The same probe runs in the background every
couple of seconds to keep the lag, pending and liveness gauges current for Prometheus.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from monitor.api.metrics import ApiMetrics
from schemas.keys import DETECTOR_GROUP
from schemas.settings import Settings

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0


@dataclass
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)
    detectors: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "reasons": self.reasons,
            "detectors": self.detectors,
            "lag": {str(k): v for k, v in self.lag.items()},
            "pending": {str(k): v for k, v in self.pending.items()},
        }


def _get(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


async def probe(redis: aioredis.Redis, settings: Settings) -> Readiness:
    """One readiness check, bounded by ``redis_op_timeout_s``; never raises."""
    keys = settings.keys
    result = Readiness(ready=True)
    try:
        async with asyncio.timeout(settings.redis_op_timeout_s):
            pipe = redis.pipeline(transaction=False)
            for shard in range(keys.shards):
                pipe.xinfo_groups(keys.steps(shard))
            horizon = time.time() - 3 * settings.heartbeat_s - settings.claim_idle_ms / 1000
            pipe.zcount(keys.detectors(), horizon, "+inf")
            replies = await pipe.execute(raise_on_error=False)
    except (RedisError, OSError, TimeoutError) as exc:
        return Readiness(ready=False, reasons=[f"redis unavailable ({type(exc).__name__})"])
    *groups, live = replies
    for shard, reply in enumerate(groups):
        if isinstance(reply, ResponseError):
            result.reasons.append(f"shard {shard}: no steps stream or group")
            continue
        if isinstance(reply, Exception):
            return Readiness(ready=False, reasons=[f"redis unavailable ({type(reply).__name__})"])
        group = next((g for g in reply if _name(g) == DETECTOR_GROUP), None)
        if group is None:
            result.reasons.append(f"shard {shard}: no '{DETECTOR_GROUP}' group")
            continue
        pending = int(_get(group, "pending") or 0)
        lag = _get(group, "lag")
        result.pending[shard] = pending
        result.lag[shard] = int(lag) if lag is not None else pending
        if result.lag[shard] > settings.ready_max_lag:
            result.reasons.append(f"shard {shard}: lag {result.lag[shard]} over the bound")
    result.detectors = int(live)
    if result.detectors == 0:
        result.reasons.append("no detector heartbeat")
    result.ready = not result.reasons
    return result


def _name(group: dict[Any, Any]) -> str:
    name = _get(group, "name")
    return name.decode() if isinstance(name, bytes) else str(name)


async def watch(
    redis: aioredis.Redis, settings: Settings, metrics: ApiMetrics, stop: asyncio.Event
) -> None:
    """Refresh the lag, pending, detector and Redis gauges until ``stop``."""
    while not stop.is_set():
        r = await probe(redis, settings)
        redis_ok = not any(x.startswith("redis unavailable") for x in r.reasons)
        metrics.redis_up.set(1 if redis_ok else 0)
        if redis_ok:
            metrics.detectors_live.set(r.detectors)
            for shard in range(settings.shards):
                metrics.group_lag.labels(DETECTOR_GROUP, str(shard)).set(r.lag.get(shard, 0))
                metrics.group_pending.labels(DETECTOR_GROUP, str(shard)).set(
                    r.pending.get(shard, 0)
                )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PROBE_INTERVAL_S):
                await stop.wait()
