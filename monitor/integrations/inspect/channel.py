"""The Inspect side's one link to the monitor's Redis: episodes, steps and verdicts.

Steps go through the sidecar's :class:`~monitor.api.store.EpisodeStore` (the same order
check, episode summary and listing as ``POST /v1/episodes/{id}/steps``), so detectors,
metrics, the live page and ``GET /v1/episodes`` see Inspect samples like any other
episode. Verdicts come from one reader task over every shard's verdicts stream, handed
to the sidecar's :class:`~monitor.api.verdicts.Waiters`.

Nothing here may fail an eval: every Redis call is bounded, and a failure is logged,
counted (``runaway_inspect_monitor_errors_total`` and :attr:`MonitorChannel.outages`)
and answered with ``None``. One channel per event loop (Inspect runs one loop per eval).
"""

import asyncio
import contextlib
import logging
from typing import Any

from prometheus_client import Counter
from redis.exceptions import RedisError

from monitor.api.errors import ApiError
from monitor.api.store import EpisodeStore
from monitor.api.verdicts import Answer, Ticket, Waiters
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeFinished, RecoveryApplied, StepEvent
from schemas.redis_io import connect, server_now_id, stream_entries
from schemas.settings import Settings
from schemas.wire import BadEntry, decode, encode, entry_episode

log = logging.getLogger(__name__)

MONITOR_ERRORS = Counter(
    "runaway_inspect_monitor_errors_total",
    "Calls from Inspect to the monitor's Redis that failed (the eval went on)",
    ["op"],
)
for _op in ("register", "step", "finish", "verdicts"):
    MONITOR_ERRORS.labels(_op)


class MonitorChannel:
    """Publishes Inspect samples' episodes and steps; waits for their verdicts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.waiters = Waiters()
        self.outages = 0  # failed calls, this process
        self.published = 0  # steps accepted
        self._redis: Any = None
        self._store: EpisodeStore | None = None
        self._reader: asyncio.Task[None] | None = None
        self._follow_lock = asyncio.Lock()  # one reader, however many samples start at once

    def _connected(self) -> EpisodeStore:
        if self._store is None:
            if not self.settings.redis_url:
                raise ConnectionError("no REDIS_URL / RUNAWAY_REDIS_URL for the monitor")
            self._redis = connect(self.settings.redis_url)
            self._store = EpisodeStore(self._redis, self.settings)
        return self._store

    async def _guard(self, op: str, make: "Any", bound_s: float | None = None) -> Any:
        """``await make(store)`` within the Redis bound; None (counted) on any failure."""
        try:
            store = self._connected()
            async with asyncio.timeout(bound_s or self.settings.redis_op_timeout_s):
                return await make(store)
        except ApiError as exc:
            if exc.code == "duplicate_step":
                return exc  # in already (an earlier reply was lost): accepted
            if exc.status != 503:  # refused (step gap, unknown episode): not an outage
                log.warning("monitor refused %s: %s", op, exc)
                return None
            self._count(op, exc)
        except (RedisError, OSError, TimeoutError) as exc:
            self._count(op, exc)
        return None

    def _count(self, op: str, exc: BaseException) -> None:
        self.outages += 1
        MONITOR_ERRORS.labels(op).inc()
        if self.outages == 1 or self.outages % 100 == 0:
            log.warning(
                "runaway-monitor unreachable (%s: %s); the eval goes on unmonitored "
                "(%d failed calls so far)",
                op,
                type(exc).__name__,
                self.outages,
            )

    async def register(self, spec: EpisodeSpec, labels: dict[str, str]) -> bool:
        """Register the episode; False when the monitor cannot be reached."""
        done = await self._guard(
            "register", lambda s: s.register(spec, labels), self.settings.verdict_timeout_s
        )
        return done is not None

    async def step(self, event: StepEvent) -> bool:
        """Publish one step. Bounded like a worker's wait for its verdict, not by the HTTP
        bound: an accept cut short may still land, and the episode's next steps would
        then be refused as a gap; an unreachable Redis fails at once either way."""
        accepted = await self._guard(
            "step", lambda s: s.accept_step(event), self.settings.verdict_timeout_s
        )
        if accepted is not None:
            self.published += 1
        return accepted is not None

    async def recovered(self, event: RecoveryApplied) -> None:
        """Tell the detectors a recovery was applied (they re-arm the episode's scorer)."""
        stream = self.keys.steps(self.keys.shard_of(event.episode_id))
        await self._guard(
            "step",
            lambda s: s.redis.xadd(
                stream, encode(event), maxlen=self.settings.steps_maxlen, approximate=True
            ),
        )

    async def finish(self, episode_id: str, steps: int, reason: str = "done") -> None:
        event = EpisodeFinished(episode_id=episode_id, step=steps, reason=reason)  # type: ignore[arg-type]
        await self._guard("finish", lambda s: s.finish(event))

    async def follow(self) -> bool:
        """Start the verdict reader (once); False when Redis cannot be reached."""
        async with self._follow_lock:
            if self._reader is None or self._reader.done():
                start = await self._guard("verdicts", lambda s: server_now_id(s.redis))
                if start is None:
                    return False
                self._reader = asyncio.create_task(self._read(start))
        return True

    async def verdict(self, episode_id: str, step: int, ticket: Ticket) -> Answer | None:
        """That step's verdict (and recovery command), or None after the step timeout.

        Take the ``ticket`` with :meth:`expect` before the step is published so the
        answer cannot be missed.
        """
        return await self.waiters.wait(episode_id, step, ticket, self.settings.step_timeout_s)

    def expect(self, episode_id: str, step: int) -> Ticket:
        return self.waiters.expect(episode_id, step)

    async def _read(self, start: str) -> None:
        cursors = {self.keys.verdicts(s): start for s in range(self.keys.shards)}
        redis = self._redis
        while True:
            try:
                reply = await redis.xread(cursors, count=1000, block=self.settings.block_ms)
            except (RedisError, OSError) as exc:
                self._count("verdicts", exc)
                await asyncio.sleep(0.5)
                continue
            for stream, entries in stream_entries(reply):
                for entry_id, fields in entries:
                    cursors[stream] = entry_id
                    if not entry_episode(fields):
                        continue
                    with contextlib.suppress(BadEntry):
                        self._route(decode(fields))

    def _route(self, event: Any) -> None:
        if event.kind == "verdict":
            self.waiters.on_verdict(event)
        elif event.kind == "recovery_command":
            self.waiters.on_recovery(event)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # bounded: on a loop inspect-ai has patched (nest_asyncio2), a cancelled reader
            # blocked in XREAD was seen to stay "cancelling" for minutes; closing its
            # connections below ends the read in any case
            await asyncio.wait({reader}, timeout=1.0)
        if self._store is not None:
            await self._store.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


_settings: list[Settings] = []
_channels: dict[tuple[int, str | None, str], MonitorChannel] = {}


def configure(settings: Settings | None) -> None:
    """Use these settings from now on (None: read the environment again)."""
    _settings.clear()
    if settings is not None:
        _settings.append(settings)


def settings() -> Settings:
    """The settings, read once from the environment (``RUNAWAY_*``, ``REDIS_URL``)."""
    if not _settings:
        _settings.append(Settings())
    return _settings[0]


def channel() -> MonitorChannel:
    """The running loop's channel for the current settings (made on first use)."""
    current = settings()
    key = (id(asyncio.get_running_loop()), current.redis_url, current.key_prefix)
    found = _channels.get(key)
    if found is None:
        found = _channels[key] = MonitorChannel(current)
    return found


def channels_open() -> bool:
    return bool(_channels)


async def close_channels() -> None:
    """Close the running loop's channels: Inspect's run has ended, and its event loop
    goes with it (a channel left open leaks its Redis connections and reader task)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _channels if k[0] == loop_id]:
        await _channels.pop(key).aclose()
