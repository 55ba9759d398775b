"""The live feed: a reader task over the steps, flips and verdicts streams of the shards.

One task blocks in a single XREAD on the three streams of every shard (on a Redis
Cluster, one task per shard: its streams share the shard's hash slot): a fixed number
of keys whatever the number of episodes. What it reads goes to the verdict waiters, the
SSE hub and the metrics. Episodes are followed (for the active-episode metrics) from
their EpisodeStarted, or the first step seen after a restart, until they finish or go
idle, at most ``follow_max_episodes`` at once. Reads start at the server's current
time: the feed is live, history is in ``GET /v1/episodes/{id}``.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.api.hub import Hub
from monitor.api.metrics import ApiMetrics
from monitor.api.verdicts import Waiters
from schemas.backoff import Backoff
from schemas.metrics import child
from schemas.redis_io import dedicated, read_groups, server_now_id, stream_entries
from schemas.settings import Settings
from schemas.wire import BadEntry, decode

log = logging.getLogger(__name__)

IDLE_UNFOLLOW_S = 600.0
FINISHED_GRACE_S = 5.0


@dataclass(slots=True)
class Followed:
    episode_id: str
    last_seen: float
    finished_at: float | None = None


class Feed:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        waiters: Waiters,
        hub: Hub,
        metrics: ApiMetrics,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self.waiters = waiters
        self.hub = hub
        self.metrics = metrics
        self.labels: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.followed: dict[str, Followed] = {}
        self.healthy = False
        # telemetry (the OTel export, monitor.integrations.otel): ``on_events(batch)`` gets
        # each batch once its verdicts are out, ``remember(...)`` each registered episode
        self.telemetry: Any = None
        self._outbox: list[Any] = []

    # following ------------------------------------------------------------------------
    def remember(self, episode_id: str, environment: str | None, labels: dict[str, str]) -> None:
        """Metric labels of an episode (bounded by :class:`LabelCap`)."""
        self.labels[episode_id] = self.metrics.episode_labels(
            environment or "custom",
            labels.get("model", "unknown"),
            labels.get("mitigation", "none"),
        )
        self.labels.move_to_end(episode_id)
        while len(self.labels) > 4 * self.settings.follow_max_episodes:
            self.labels.popitem(last=False)
        if self.telemetry is not None:
            self.telemetry.remember(episode_id, environment, labels)

    def follow(self, episode_id: str) -> None:
        """Count the episode as live until it finishes or goes idle."""
        now = time.monotonic()
        f = self.followed.get(episode_id)
        if f is not None:
            f.last_seen, f.finished_at = now, None
            return
        if len(self.followed) >= self.settings.follow_max_episodes:
            self._evict(now, force=True)
        self.followed[episode_id] = Followed(episode_id, now)
        self.metrics.followed.set(len(self.followed))

    def _unfollow(self, episode_id: str) -> None:
        self.followed.pop(episode_id, None)
        self.metrics.followed.set(len(self.followed))

    def _evict(self, now: float, force: bool = False) -> None:
        for f in list(self.followed.values()):
            if f.finished_at is not None and now - f.finished_at > FINISHED_GRACE_S:
                self._unfollow(f.episode_id)
            elif now - f.last_seen > IDLE_UNFOLLOW_S:
                self._unfollow(f.episode_id)
        if force and len(self.followed) >= self.settings.follow_max_episodes:
            oldest = min(self.followed.values(), key=lambda f: f.last_seen)
            self._unfollow(oldest.episode_id)

    # reading --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        groups = read_groups(self.redis, self.keys.shards)
        tasks = [asyncio.create_task(self._run_shards(g, stop)) for g in groups]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_ids(self, shards: list[int]) -> dict[str, str]:
        now_id = await server_now_id(self.redis)
        k = self.keys
        streams = [name for s in shards for name in (k.steps(s), k.flips(s), k.verdicts(s))]
        return dict.fromkeys(streams, now_id)

    async def _run_shards(self, shards: list[int], stop: asyncio.Event) -> None:
        async with dedicated(self.redis) as redis:
            await self._follow_shards(redis, shards, stop)

    async def _follow_shards(
        self, redis: aioredis.Redis, shards: list[int], stop: asyncio.Event
    ) -> None:
        backoff, cursors, last_evict = Backoff(), None, time.monotonic()
        while not stop.is_set():
            try:
                if cursors is None:
                    cursors = await self._start_ids(shards)
                reply = await redis.xread(cursors, count=500, block=self.settings.block_ms)
                self.healthy = True
                backoff.reset()
            except (RedisError, OSError) as exc:
                self.healthy = False
                log.warning("feed shards %s: redis unavailable (%s)", shards, type(exc).__name__)
                await backoff.wait(stop)
                continue
            for stream, entries in stream_entries(reply):
                for entry_id, fields in entries:
                    cursors[stream] = entry_id.decode()
                    try:
                        self._route(decode(fields))
                    except BadEntry:
                        continue  # the detector dead-letters bad steps; nothing to show
            self._flush_telemetry()
            now = time.monotonic()
            if now - last_evict > 1.0:
                last_evict = now
                self._evict(now)
                self.metrics.active.set(sum(1 for f in self.followed.values() if not f.finished_at))

    def _route(self, ev: Any) -> None:
        kind, episode_id = ev.kind, ev.episode_id
        f = self.followed.get(episode_id)
        if f is not None:
            f.last_seen = time.monotonic()
        labels = self.labels.get(episode_id, ("unknown", "unknown", "unknown"))
        if kind == "episode_started":
            self.remember(episode_id, ev.spec.environment, ev.spec.labels)
            self.follow(episode_id)
        elif kind == "step":
            if f is None:
                self.follow(episode_id)  # joined mid-episode
            child(self.metrics.feed_steps, *labels).inc()
        elif kind == "verdict":
            self.waiters.on_verdict(ev)
            m = self.metrics
            child(m.feed_verdicts, m.action(ev.verdict), m.cause(verdict_cause(ev))).inc()
            self.metrics.detection_lag.observe(max(0.0, time.time() - ev.step_ts))
        elif kind == "recovery_command":
            self.waiters.on_recovery(ev)
            child(self.metrics.feed_recoveries, *labels).inc()
        elif kind == "flip":
            child(self.metrics.feed_flips, *labels, ev.flag).inc()
        elif kind == "episode_finished" and f is not None:
            f.finished_at = time.monotonic()
        if self.hub.subscribers:  # a payload is built only for someone watching the live page
            self.hub.publish(kind, episode_id, ev.id, orjson.dumps(live_payload(ev)))
        if self.telemetry is not None:
            self._outbox.append(ev)

    def _flush_telemetry(self) -> None:
        """Hand the batch to telemetry after the loop has run the woken requests."""
        if self._outbox and self.telemetry is not None:
            events, self._outbox = self._outbox, []
            asyncio.get_running_loop().call_soon(self._send_telemetry, events)

    def _send_telemetry(self, events: list[Any]) -> None:
        try:
            if self.telemetry is not None:
                self.telemetry.on_events(events)
        except Exception:  # telemetry never stops the feed
            log.exception("telemetry failed for %d events", len(events))


def verdict_cause(ev: Any) -> str:
    """The flag behind a verdict: its ``cause`` (issue 14's field) where it has one; else,
    for a non-continue verdict, the flag detected at that step (a reset: ``runaway``)."""
    cause = getattr(ev, "cause", None)
    if cause:
        return str(cause)
    if ev.verdict == "continue" or not ev.detections:
        return "none"
    return "runaway" if "runaway" in ev.detections else str(ev.detections[0])


def live_payload(ev: Any) -> dict[str, Any]:
    """What the live page gets of an event: prompts, reminders and errors stay out."""
    payload: dict[str, Any]
    if ev.kind == "episode_started":
        spec = ev.spec
        payload = {
            "episode_id": ev.episode_id,
            "environment": spec.environment or "custom",
            "objectives": list(spec.objectives.names),
            "labels": spec.labels,
            "ts": ev.ts,
        }
    else:
        exclude = {
            "step": {"text"},
            "recovery_command": {"reminder"},
            "episode_finished": {"error"},
        }.get(ev.kind)
        payload = ev.model_dump(mode="json", exclude=exclude)
    payload["kind"] = ev.kind
    return payload
