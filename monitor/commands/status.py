"""``runaway-monitor status [--json]``: who is alive on ``REDIS_URL`` and is every shard read?

Lists the workers and detectors from their heartbeat keys (a process whose key expired
is listed as stale), each shard's owner, lag and pending entries, and the dead-letter
counts. ``--json`` prints ``{"workers": [...], "detectors": [...], "shards": [...],
"jobs": {...}}``. Exits 1 when a shard has no live owner (its steps wait unscored), 2
when Redis cannot be read, else 0: a check for scripts and probes.
"""

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from monitor.cli_settings import settings_from
from schemas.health import Heartbeat, field_of, read_heartbeats
from schemas.keys import DETECTOR_GROUP, WORKER_GROUP
from schemas.redis_io import connect
from schemas.settings import Settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("status", help="live workers and detectors, shard owners, lag (REDIS_URL)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = settings_from()
    if not settings.redis_url:
        print("error: status needs REDIS_URL (the server the processes use)", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_collect_from(settings))
    except (RedisError, OSError, TimeoutError) as exc:  # the URL may hold a password: not shown
        print(f"error: cannot read Redis ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else render(report))
    return exit_code(report)


def exit_code(report: dict[str, Any]) -> int:
    return 1 if any(not s["owner_live"] for s in report["shards"]) else 0


async def _collect_from(settings: Settings) -> dict[str, Any]:
    redis = connect(settings.redis_url or "")
    try:
        async with asyncio.timeout(max(5.0, 3 * settings.redis_op_timeout_s)):
            return await collect(redis, settings)
    finally:
        await redis.aclose()


async def collect(redis: aioredis.Redis, settings: Settings) -> dict[str, Any]:
    """The report: processes from their heartbeats, then the shards and the jobs stream."""
    keys, now = settings.keys, time.time()
    workers = [_process(*p, now) for p in await read_heartbeats(redis, keys, "worker")]
    detectors = [_process(*p, now) for p in await read_heartbeats(redis, keys, "detector")]
    live = {d["name"] for d in detectors if d["live"]}
    return {
        "workers": workers,
        "detectors": detectors,
        "shards": await _shards(redis, settings, live),
        "jobs": await _jobs(redis, settings),
    }


def _process(name: str, last_seen: float, beat: Heartbeat | None, now: float) -> dict[str, Any]:
    if beat is None:  # the key expired: dead, or too stuck to write it
        return {"name": name, "live": False, "heartbeat_age_s": round(now - last_seen, 3)}

    def age(ts: float | None) -> float | None:
        return None if ts is None else round(max(0.0, now - ts), 3)

    return {
        "name": name,
        "live": True,
        "heartbeat_age_s": age(beat.ts),
        "host": beat.host,
        "pid": beat.pid,
        "uptime_s": age(beat.started_at),
        "episodes": beat.episodes,
        "concurrency": beat.concurrency,
        "shards": beat.shards,
        "last_batch_age_s": age(beat.last_batch_ts),
        "loop_age_s": age(beat.loop_ts),
        "errors": beat.errors,
        "last_error": beat.last_error,
    }


def _group(reply: Any, group: str) -> dict[str, Any] | None:
    """The group's XINFO GROUPS entry, or None (no stream, or no such group)."""
    if isinstance(reply, ResponseError):
        return None
    if isinstance(reply, Exception):
        raise reply
    return next((g for g in reply if field_of(g, "name") == group), None)


def _lag_pending(info: dict[str, Any] | None) -> tuple[int | None, int]:
    if info is None:
        return None, 0
    lag = field_of(info, "lag")  # None where Redis cannot tell (or before 7.0)
    return (None if lag is None else int(lag)), int(field_of(info, "pending") or 0)


async def _shards(redis: aioredis.Redis, settings: Settings, live: set[str]) -> list[dict]:
    keys = settings.keys
    pipe = redis.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.get(keys.lease(shard))
        pipe.xinfo_groups(keys.steps(shard))
        pipe.xlen(keys.deadletter(shard))
    replies = await pipe.execute(raise_on_error=False)
    out = []
    for shard in range(keys.shards):
        owner_raw, groups, dead = replies[3 * shard : 3 * shard + 3]
        for reply in (owner_raw, dead):
            if isinstance(reply, Exception):
                raise reply
        owner = owner_raw.decode() if isinstance(owner_raw, bytes) else owner_raw
        lag, pending = _lag_pending(_group(groups, DETECTOR_GROUP))
        out.append(
            {
                "shard": shard,
                "owner": owner,
                "owner_live": owner is not None and owner in live,
                "lag": lag,
                "pending": pending,
                "deadletters": int(dead),
            }
        )
    return out


async def _jobs(redis: aioredis.Redis, settings: Settings) -> dict[str, Any]:
    keys = settings.keys
    pipe = redis.pipeline(transaction=False)
    pipe.xinfo_groups(keys.jobs())
    pipe.xlen(keys.jobs())
    pipe.xlen(keys.jobs_deadletter())
    groups, length, dead = await pipe.execute(raise_on_error=False)
    lag, pending = _lag_pending(_group(groups, WORKER_GROUP))
    if isinstance(length, Exception):
        raise length
    return {"waiting": lag, "running": pending, "length": int(length), "deadletters": int(dead)}


def render(report: dict[str, Any]) -> str:
    """The report for a person: one line per process and per shard."""
    lines = []
    for role in ("workers", "detectors"):
        procs = report[role]
        live = sum(p["live"] for p in procs)
        lines.append(f"{role}: {live} live, {len(procs) - live} stale")
        for p in procs:
            if not p["live"]:
                lines.append(
                    f"  {p['name']}  STALE  last heartbeat {p['heartbeat_age_s']:.1f} s ago"
                )
                continue
            doing = (
                f"episodes {p['episodes']}/{p['concurrency']}"
                if role == "workers"
                else f"shards {','.join(map(str, p['shards'])) or '-'}"
            )
            batch = p["last_batch_age_s"]
            lines.append(
                f"  {p['name']}  heartbeat {p['heartbeat_age_s']:.1f} s ago  {doing}  "
                f"last batch {'-' if batch is None else f'{batch:.1f} s ago'}  errors {p['errors']}"
            )
    lines.append("shards:")
    for s in report["shards"]:
        owner = s["owner"] or "-"
        state = "" if s["owner_live"] else "  NO LIVE OWNER"
        lag = "?" if s["lag"] is None else s["lag"]
        lines.append(
            f"  {s['shard']:>3}  owner {owner}  lag {lag}  pending {s['pending']}  "
            f"dead-lettered {s['deadletters']}{state}"
        )
    j = report["jobs"]
    waiting = "?" if j["waiting"] is None else j["waiting"]
    lines.append(
        f"jobs: {waiting} waiting, {j['running']} running, dead-lettered {j['deadletters']}"
    )
    return "\n".join(lines)
