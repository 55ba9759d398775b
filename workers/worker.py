"""The worker process: takes episode jobs from Redis and runs many of them concurrently.

Jobs come from the ``jobs`` stream through the ``workers`` consumer group, at most
``concurrency`` at a time. One reader task (one per shard on a Redis Cluster) follows the
shards' verdicts streams (every episode's verdicts and recovery commands, tagged with
the episode id) and routes the entries of this worker's episodes to their runners,
skipping the rest undecoded: one key per shard however many episodes run. A job is
acked when its episode has ended; on shutdown, episodes get ``shutdown_grace_s`` to
finish, the rest are cancelled and their jobs left un-acked, i.e. handed back.

A worker that dies (SIGKILL, OOM, lost host) cannot hand anything back. So every worker
heartbeats the jobs it runs (``XCLAIM ... JUSTID`` to itself, which resets their idle
time) every ``heartbeat_s``, and reclaims (``XAUTOCLAIM``) jobs idle for more than
``claim_idle_ms``: their worker is gone. A reclaimed episode is not resumed mid-way (the
agent's context died with the worker): the old attempt is closed with
``EpisodeFinished(reason="abandoned")`` and the episode is re-run from its seed under a
new attempt id, ``<episode_id>.a<n>``, so the steps stream never holds two different
step ``k`` for one episode id. A job delivered more than ``max_deliveries`` times is
dead-lettered instead of being run again. A worker that finds one of its jobs taken over
(it was too slow to heartbeat) cancels that episode without acking it. The reclaim
follows XAUTOCLAIM's cursor from one heartbeat to the next (one call scans at most 10 x
COUNT pending entries), and each heartbeat trims the jobs every worker has finished.

Each heartbeat also writes the worker's own heartbeat key (:mod:`schemas.health`:
episodes in flight, last batch, errors) for ``runaway-monitor status``, and
:meth:`Worker.readiness` is its ``/readyz``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from schemas.backoff import Backoff
from schemas.batch_writes import CommandBatcher
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeFinished
from schemas.health import LoopWatch, clear_heartbeat, readiness, write_heartbeat
from schemas.keys import EPISODE_TTL_S, WORKER_GROUP
from schemas.metrics import WorkerMetrics
from schemas.redis_io import (
    autoclaim_entries,
    dedicated,
    ensure_group,
    read_groups,
    server_now_id,
    stream_entries,
)
from schemas.settings import Settings
from schemas.wire import BadEntry, decode, decode_job, encode, entry_episode
from workers.agents.base import Agent
from workers.environments.base import Environment
from workers.episode_log import EpisodeLog
from workers.inbox import Inbox
from workers.job_scripts import HEARTBEAT, TRIM_DONE
from workers.mitigations import parse_mitigations
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics
from workers.publisher import StreamPublisher
from workers.runner import EpisodeResult, EpisodeRunner

log = logging.getLogger(__name__)

EnvFactory = Callable[[EpisodeSpec], Environment]
AgentFactory = Callable[[EpisodeSpec, Environment], Agent]


def default_env_factory(spec: EpisodeSpec) -> Environment:
    from workers.environments import create_environment

    if spec.environment is None:
        raise ValueError("a worker can only run built-in environments")
    return create_environment(spec.environment, seed=spec.seed, **spec.env_options)


class AgentBuilder:
    """Builds each episode's agent; model agents share one worker's limits and metrics."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._limits: ModelLimits | None = None
        self._model_metrics: ModelMetrics | None = None

    def __call__(self, spec: EpisodeSpec, env: Environment) -> Agent:
        from workers.agents import AGENT_FACTORIES, create_agent

        if spec.agent is None:
            raise ValueError("the episode spec names no agent")
        if spec.agent.kind in AGENT_FACTORIES:  # scripted: no model SDK import (~2.7 s)
            return create_agent(spec.agent, seed=spec.seed)
        from workers.agents.models import MODEL_KINDS, create_model_agent

        if spec.agent.kind not in MODEL_KINDS:
            return create_agent(spec.agent, seed=spec.seed)
        if self._limits is None:
            self._limits = ModelLimits.from_settings(self.settings)
            self._model_metrics = ModelMetrics(self.metrics.registry)
        return create_model_agent(
            spec.agent, self.settings, self._limits, metrics=self._model_metrics
        )


class Worker:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        metrics: WorkerMetrics | None = None,
        name: str = "worker",
        env_factory: EnvFactory = default_env_factory,
        agent_factory: AgentFactory | None = None,
        on_result: Callable[[EpisodeResult], None] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self.metrics = metrics or WorkerMetrics()
        self.name = name
        self.env_factory = env_factory
        self.agent_factory = agent_factory or AgentBuilder(settings, self.metrics)
        self.on_result = on_result
        self.log_dir = log_dir
        self.publisher = StreamPublisher(redis)
        self._bookkeeping = CommandBatcher(redis)  # job acks and index entries, batched
        self.results: list[EpisodeResult] = []
        self.errors: list[str] = []
        self._inboxes: dict[str, Inbox] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runners: dict[str, EpisodeRunner] = {}
        self._job_ids: dict[str, bytes] = {}  # episode id -> jobs entry id
        self._acking: dict[bytes, str] = {}  # jobs of ended episodes whose ack is on its way
        self._lost: set[str] = set()  # episodes whose job another worker took over
        self._last_heartbeat = 0.0
        self._claim_cursor: bytes | str = "0-0"  # XAUTOCLAIM's, kept between heartbeats
        self._episode_ended = asyncio.Event()
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._trim_done = redis.register_script(TRIM_DONE)
        self.ready = False  # the loop's last Redis call succeeded (part of /readyz)
        self.health = LoopWatch(settings.loop_stuck_s)

    @property
    def active(self) -> int:
        return len(self._tasks)

    @property
    def steps_played(self) -> int:
        done = sum(r.steps for r in self.results)
        return done + sum(r.result.steps for r in self._runners.values())

    @property
    def live_flips(self) -> int:
        """Flips detected in episodes still running."""
        return sum(r.result.flips for r in self._runners.values())

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> list[EpisodeResult]:
        """Run jobs until ``stop`` (or, with ``until_idle``, until no job is left)."""
        await ensure_group(self.redis, self.keys.jobs(), WORKER_GROUP)
        start_id = await server_now_id(self.redis)  # verdicts from before are not ours
        readers_stop = asyncio.Event()
        readers = [
            asyncio.create_task(self._read_control(group, start_id, readers_stop))
            for group in read_groups(self.redis, self.keys.shards)
        ]
        cursor = "0"  # jobs this worker name already holds, then new ones
        backoff = Backoff()
        try:
            while not stop.is_set():
                self.health.tick()
                self._episode_ended.clear()  # an episode ending from here on wakes _wait_any
                free = self.settings.concurrency - len(self._tasks)
                try:
                    reclaimed = await self._heartbeat_and_reclaim(free)
                    free -= len(reclaimed)
                    for entry_id, fields, attempt in reclaimed:
                        await self._start(entry_id, fields, attempt)
                    if free <= 0:
                        self.ready = True
                        await self._wait_any(stop, within_s=self.settings.heartbeat_s)
                        continue
                    reply = await self.redis.xreadgroup(
                        WORKER_GROUP,
                        self.name,
                        {self.keys.jobs(): cursor},
                        count=free,
                        block=None if cursor == "0" else self.settings.block_ms,
                    )
                    self.ready = True
                    backoff.reset()
                except RedisError as exc:
                    self.ready = False
                    self.health.error(exc)
                    log.warning("worker: redis unavailable (%s); retrying", exc)
                    await backoff.wait(stop)
                    continue
                entries = [e for _, es in stream_entries(reply) for e in es]
                if not entries and cursor == "0":
                    cursor = ">"
                    continue
                if entries:
                    self.health.batch()
                for entry_id, fields in entries:
                    await self._start(entry_id, fields)
                if not entries and until_idle:
                    if not self._tasks and not await self._jobs_pending():
                        break
                    await self._wait_any(stop, within_s=self.settings.heartbeat_s)
        finally:
            try:
                await self._shutdown()
                with contextlib.suppress(RedisError):  # stopped, not stale
                    await clear_heartbeat(self.redis, self.keys, "worker", self.name)
                readers_stop.set()
                await asyncio.gather(*readers, return_exceptions=True)
            finally:  # also when cancelled again meanwhile: connections are given back
                for reader in readers:
                    reader.cancel()
                await asyncio.shield(self._close_writers())
        return self.results

    async def _close_writers(self) -> None:
        await self.publisher.aclose()
        await self._bookkeeping.aclose()

    async def _wait_any(self, stop: asyncio.Event, within_s: float | None = None) -> None:
        """Until an episode ends, ``stop`` is set, or ``within_s`` passes.

        An event set by each ending episode, not ``asyncio.wait`` on every task: that
        added and removed a callback on each of thousands of tasks at every wake.
        """
        stop_wait = asyncio.create_task(stop.wait())
        ended_wait = asyncio.create_task(self._episode_ended.wait())
        waiting = [stop_wait, ended_wait]
        await asyncio.wait(waiting, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        ended_wait.cancel()

    async def _jobs_pending(self) -> int:
        """Jobs delivered to some worker and not acked yet (burst mode waits for them)."""
        return int((await self.redis.xpending(self.keys.jobs(), WORKER_GROUP))["pending"])

    async def _heartbeat_and_reclaim(self, free: int) -> list[tuple[bytes, Any, int]]:
        """Keep our jobs fresh, notice lost ones, take over those of dead workers.

        Runs at most once per ``heartbeat_s``; returns reclaimed ``(entry id, fields,
        attempt)`` to start.
        """
        now = asyncio.get_running_loop().time()
        if now - self._last_heartbeat < self.settings.heartbeat_s:
            return []
        self._last_heartbeat = now
        jobs = self.keys.jobs()
        await self._beat()
        held = {e: ep for ep, e in self._job_ids.items() if ep not in self._lost}
        held.update(self._acking)  # ended, ack on its way: still ours until it lands
        if held:
            lost = await self._heartbeat(keys=[jobs], args=[WORKER_GROUP, self.name, *held])
            for entry_id in lost:
                episode_id = held[entry_id if isinstance(entry_id, bytes) else entry_id.encode()]
                if episode_id not in self._tasks:
                    continue  # it ended, and its ack landed while the heartbeat ran
                log.warning("job of episode %s was taken over; cancelling it", episode_id)
                self._lost.add(episode_id)
                task = self._tasks.get(episode_id)
                if task is not None:
                    task.cancel()
        await self._trim_done(keys=[jobs], args=[WORKER_GROUP])  # XACK does not delete
        if free <= 0:
            return []
        # follow the cursor: XAUTOCLAIM scans at most 10 x count pending entries per call,
        # so restarting at 0-0 would never reach a dead worker's jobs deep in the list
        reply = await self.redis.xautoclaim(
            jobs,
            WORKER_GROUP,
            self.name,
            min_idle_time=self.settings.claim_idle_ms,
            start_id=self._claim_cursor,
            count=free,
        )
        self._claim_cursor, claimed, deleted = autoclaim_entries(reply)
        if deleted:
            await self.redis.xack(jobs, WORKER_GROUP, *deleted)
        if not claimed:
            return []
        info = await self.redis.xpending_range(
            jobs, WORKER_GROUP, min=claimed[0][0], max=claimed[-1][0], count=len(claimed) + 100
        )
        deliveries = {p["message_id"]: p["times_delivered"] for p in info}
        out = []
        for entry_id, fields in claimed:
            times = int(deliveries.get(entry_id, 2))
            if times > self.settings.max_deliveries:
                await self._reject(entry_id, f"job delivered {times} times; giving up")
                continue
            out.append((entry_id, fields, times))
        return out

    async def _beat(self) -> None:
        """The heartbeat key ``status`` reads: alive, and what this worker is doing."""
        beat = self.health.heartbeat(
            "worker", self.name, episodes=len(self._tasks), concurrency=self.settings.concurrency
        )
        await write_heartbeat(self.redis, self.keys, beat, self.settings.heartbeat_ttl_s)

    async def readiness(self) -> dict[str, Any]:
        """``/readyz``: Redis answers, the jobs stream has its group, no loop is stuck."""
        body = await readiness(
            self.redis,
            self.health,
            [self.keys.jobs()],
            WORKER_GROUP,
            self.settings.redis_op_timeout_s,
            episodes=len(self._tasks),
        )
        if not self.ready and body["status"] == "ready":
            body["status"], body["reasons"] = "not_ready", ["the job loop's last read failed"]
        return body

    async def _index_episode(self, spec: EpisodeSpec, status: str) -> None:
        """List the episode beside the sidecar's (``GET /v1/episodes``); best effort.

        No ``spec`` field: the sidecar refuses steps posted to an episode a worker runs.
        """
        key = self.keys.episode(spec.episode_id)
        now = time.time()
        fields = {
            "status": status,
            "source": "worker",
            "registered_at": now,
            "updated_at": now,
            "environment": spec.environment or "custom",
            "model": spec.labels.get("model", spec.agent.kind if spec.agent else "unknown"),
            "mitigation": spec.mitigation,
        }

        def fill(pipe: Any) -> None:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, EPISODE_TTL_S)
            pipe.zadd(self.keys.episodes(), {spec.episode_id: now})

        with contextlib.suppress(RedisError):
            await self._bookkeeping.submit(fill)

    async def _reject(self, entry_id: bytes, reason: str) -> None:
        self.errors.append(f"job {entry_id.decode()}: {reason}")
        log.error("job %s rejected: %s", entry_id.decode(), reason)
        await self.redis.xadd(
            self.keys.jobs_deadletter(),
            {"reason": reason[:500], "entry_id": entry_id},
            maxlen=self.settings.deadletter_maxlen,
            approximate=True,
        )
        await self.redis.xack(self.keys.jobs(), WORKER_GROUP, entry_id)

    async def _abandon(self, spec: EpisodeSpec, attempt: int) -> None:
        """Close the previous attempt of a reclaimed episode in the steps stream."""
        previous = spec.episode_id if attempt <= 2 else f"{spec.episode_id}.a{attempt - 1}"
        shard = self.keys.shard_of(previous)
        event = EpisodeFinished(
            episode_id=previous, step=0, reason="abandoned", error="its worker stopped answering"
        )
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(
            self.keys.steps(shard),
            encode(event),
            maxlen=self.settings.steps_maxlen,
            approximate=True,
        )
        pipe.delete(self.keys.control(previous))
        await pipe.execute()

    async def _start(self, entry_id: bytes, fields: dict[Any, Any], attempt: int = 1) -> None:
        try:
            spec = decode_job(fields)
            if attempt > 1:  # re-run a dead worker's episode from its seed, under a new id
                await self._abandon(spec, attempt)
                spec = spec.model_copy(update={"episode_id": f"{spec.episode_id}.a{attempt}"})
            plan = parse_mitigations(spec.mitigation)
            env = self.env_factory(spec)
            agent = self.agent_factory(spec, env)
        except (BadEntry, ValueError) as exc:
            await self._reject(entry_id, str(exc))
            return
        inbox = self._inboxes[spec.episode_id] = Inbox()
        runner = EpisodeRunner(
            spec,
            env,
            agent,
            self.publisher,
            inbox,
            self.settings,
            self.metrics,
            plan,
            EpisodeLog(self.log_dir, spec.episode_id) if self.log_dir else None,
        )
        task = asyncio.create_task(self._run_episode(entry_id, spec, runner, agent))
        self._tasks[spec.episode_id] = task
        self._runners[spec.episode_id] = runner
        self._job_ids[spec.episode_id] = entry_id
        self.metrics.active.set(len(self._tasks))

    async def _run_episode(
        self, entry_id: bytes, spec: EpisodeSpec, runner: EpisodeRunner, agent: Agent
    ) -> None:
        cancelled = False
        try:
            await self._index_episode(spec, "active")  # here: episodes start without waiting
            result = await runner.run()
            if runner.log is not None:
                await runner.log.write()
        except asyncio.CancelledError:
            cancelled = True
            self.metrics.episodes.labels(runner.labels[0], "cancelled").inc()
            self._lost.discard(spec.episode_id)
            raise  # the job stays un-acked: handed back to another worker
        except Exception as exc:
            log.exception("episode %s failed", spec.episode_id)
            result = runner.result
            result.outcome, result.error = "error", f"{type(exc).__name__}: {exc}"[:500]
        finally:
            self._tasks.pop(spec.episode_id, None)
            self._runners.pop(spec.episode_id, None)
            self._inboxes.pop(spec.episode_id, None)
            if self._job_ids.pop(spec.episode_id, None) is not None and not cancelled:
                # still heartbeated until the ack lands: the job must not look abandoned
                self._acking[entry_id] = spec.episode_id
            self._episode_ended.set()
            self.metrics.active.set(len(self._tasks))
            with contextlib.suppress(Exception):
                await agent.aclose()
        self.metrics.episodes.labels(result.environment, result.outcome).inc()
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)

        def fill(pipe: Any) -> None:
            pipe.xack(self.keys.jobs(), WORKER_GROUP, entry_id)
            pipe.delete(self.keys.control(spec.episode_id))
            pipe.hset(self.keys.episode(spec.episode_id), "status", "finished")

        backoff = Backoff(max_attempts=12)  # ride out a Redis restart; else re-run later
        try:
            while True:
                try:
                    await self._bookkeeping.submit(fill)
                    break
                except RedisError:
                    if not await backoff.wait():
                        break
        finally:
            self._acking.pop(entry_id, None)

    async def _shutdown(self) -> None:
        if not self._tasks:
            return
        tasks = list(self._tasks.values())
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _read_control(self, shards: list[int], start_id: str, stop: asyncio.Event) -> None:
        """Route these shards' verdicts and recovery commands to our episodes' inboxes."""
        loop = f"verdicts of shards {shards[0]}-{shards[-1]}"
        try:
            async with dedicated(self.redis) as redis:
                await self._route_control(redis, shards, start_id, stop, loop)
        finally:
            self.health.forget(loop)

    async def _route_control(
        self,
        redis: aioredis.Redis,
        shards: list[int],
        start_id: str,
        stop: asyncio.Event,
        loop: str,
    ) -> None:
        cursors = {self.keys.verdicts(s): start_id for s in shards}
        inboxes = self._inboxes
        backoff = Backoff()
        while not stop.is_set():
            self.health.tick(loop)
            try:
                reply = await redis.xread(cursors, count=1000, block=self.settings.block_ms)
                backoff.reset()
            except RedisError as exc:
                self.health.error(exc)
                log.warning("worker control reader: %s", exc)
                await backoff.wait(stop)
                continue
            for stream, entries in stream_entries(reply):
                for entry_id, fields in entries:
                    cursors[stream] = entry_id
                    inbox = inboxes.get(entry_episode(fields) or "")
                    if inbox is None:
                        continue  # another worker's episode, or one that ended meanwhile
                    try:
                        inbox.put(decode(fields))
                    except BadEntry as exc:
                        log.error("bad control entry in %s: %s", stream, exc)
