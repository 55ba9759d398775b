"""The worker process: takes episode jobs from Redis and runs many of them concurrently.

Jobs come from the ``jobs`` stream through the ``workers`` consumer group, at most
``concurrency`` at a time. One reader task per shard follows the control streams of the
shard's active episodes and routes verdicts and recovery commands to their runners. A
job is acked when its episode has ended; on shutdown, episodes get ``shutdown_grace_s``
to finish, the rest are cancelled and their jobs left un-acked, i.e. handed back.

A worker that dies (SIGKILL, OOM, lost host) cannot hand anything back. So every worker
heartbeats the jobs it runs (``XCLAIM ... JUSTID`` to itself, which resets their idle
time) every ``heartbeat_s``, and reclaims (``XAUTOCLAIM``) jobs idle for more than
``claim_idle_ms``: their worker is gone. A reclaimed episode is not resumed mid-way (the
agent's context died with the worker): the old attempt is closed with
``EpisodeFinished(reason="abandoned")`` and the episode is re-run from its seed under a
new attempt id, ``<episode_id>.a<n>``, so the steps stream never holds two different
step ``k`` for one episode id. A job delivered more than ``max_deliveries`` times is
dead-lettered instead of being run again. A worker that finds one of its jobs taken over
(it was too slow to heartbeat) cancels that episode without acking it.
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

from monitor.connections import autoclaim_entries, ensure_group, stream_entries
from monitor.metrics import WorkerMetrics
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeFinished
from schemas.keys import EPISODE_TTL_S, WORKER_GROUP
from schemas.settings import Settings
from schemas.wire import BadEntry, decode, decode_job, encode
from workers.agents.base import Agent
from workers.environments.base import Environment
from workers.episode_log import EpisodeLog
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
        self.results: list[EpisodeResult] = []
        self.errors: list[str] = []
        self._inboxes: dict[str, asyncio.Queue[Any]] = {}
        self._control_ids: dict[str, bytes] = {}
        # shard -> {control stream: episode id}, kept up to date as episodes start and end
        self._control_streams: dict[int, dict[str, str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runners: dict[str, EpisodeRunner] = {}
        self._job_ids: dict[str, bytes] = {}  # episode id -> jobs entry id
        self._lost: set[str] = set()  # episodes whose job another worker took over
        self._last_heartbeat = 0.0
        self.ready = False

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
        readers_stop = asyncio.Event()
        readers = [
            asyncio.create_task(self._read_control(shard, readers_stop))
            for shard in range(self.keys.shards)
        ]
        cursor = "0"  # jobs this worker name already holds, then new ones
        backoff = 0.05
        try:
            while not stop.is_set():
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
                        WORKER_GROUP, self.name, {self.keys.jobs(): cursor},
                        count=free, block=None if cursor == "0" else self.settings.block_ms,
                    )  # fmt: skip
                    self.ready, backoff = True, 0.05
                except RedisError as exc:
                    self.ready = False
                    log.warning("worker: redis unavailable (%s); retrying in %.2fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                entries = [e for _, es in stream_entries(reply) for e in es]
                if not entries and cursor == "0":
                    cursor = ">"
                    continue
                for entry_id, fields in entries:
                    await self._start(entry_id, fields)
                if not entries and until_idle:
                    if not self._tasks and not await self._jobs_pending():
                        break
                    await self._wait_any(stop, within_s=self.settings.heartbeat_s)
        finally:
            await self._shutdown()
            readers_stop.set()
            await asyncio.gather(*readers, return_exceptions=True)
            await self.publisher.aclose()
        return self.results

    async def _wait_any(self, stop: asyncio.Event, within_s: float | None = None) -> None:
        stop_wait = asyncio.create_task(stop.wait())
        waiting = [stop_wait, *self._tasks.values()]
        await asyncio.wait(waiting, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()

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
        if self._job_ids:
            pending = await self.redis.xpending_range(
                jobs, WORKER_GROUP, min="-", max="+", count=10_000, consumername=self.name
            )
            ours = {p["message_id"] for p in pending}
            for episode_id, entry_id in list(self._job_ids.items()):
                if entry_id not in ours and episode_id not in self._lost:
                    log.warning("job of episode %s was taken over; cancelling it", episode_id)
                    self._lost.add(episode_id)
                    task = self._tasks.get(episode_id)
                    if task is not None:
                        task.cancel()
            mine = [e for ep, e in self._job_ids.items() if ep not in self._lost and e in ours]
            if mine:
                await self.redis.xclaim(
                    jobs, WORKER_GROUP, self.name, min_idle_time=0, message_ids=mine, justid=True
                )
        if free <= 0:
            return []
        reply = await self.redis.xautoclaim(
            jobs, WORKER_GROUP, self.name, min_idle_time=self.settings.claim_idle_ms,
            start_id="0-0", count=free,
        )  # fmt: skip
        _, claimed, deleted = autoclaim_entries(reply)
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

    async def _index_episode(self, spec: EpisodeSpec, status: str) -> None:
        """List the episode beside the sidecar's (``GET /v1/episodes``); best effort.

        No ``spec`` field: the sidecar refuses steps posted to an episode a worker runs.
        """
        key = self.keys.episode(spec.episode_id)
        now = time.time()
        fields = {
            "status": status, "source": "worker", "registered_at": now, "updated_at": now,
            "environment": spec.environment or "custom",
            "model": spec.labels.get("model", spec.agent.kind if spec.agent else "unknown"),
            "mitigation": spec.mitigation,
        }  # fmt: skip
        with contextlib.suppress(RedisError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, EPISODE_TTL_S)
            pipe.zadd(self.keys.episodes(), {spec.episode_id: now})
            await pipe.execute()

    async def _reject(self, entry_id: bytes, reason: str) -> None:
        self.errors.append(f"job {entry_id.decode()}: {reason}")
        log.error("job %s rejected: %s", entry_id.decode(), reason)
        await self.redis.xadd(
            f"{self.keys.jobs()}:deadletter",
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
        pipe.xadd(self.keys.steps(shard), encode(event), maxlen=self.settings.steps_maxlen,
                  approximate=True)  # fmt: skip
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
        await self._index_episode(spec, "active")
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._inboxes[spec.episode_id] = inbox
        self._control_ids[spec.episode_id] = b"0-0"
        shard = self.keys.shard_of(spec.episode_id)
        self._control_streams.setdefault(shard, {})[self.keys.control(spec.episode_id)] = (
            spec.episode_id
        )
        runner = EpisodeRunner(
            spec, env, agent, self.publisher, inbox, self.settings, self.metrics, plan,
            EpisodeLog(self.log_dir, spec.episode_id) if self.log_dir else None,
        )  # fmt: skip
        task = asyncio.create_task(self._run_episode(entry_id, spec, runner, agent))
        self._tasks[spec.episode_id] = task
        self._runners[spec.episode_id] = runner
        self._job_ids[spec.episode_id] = entry_id
        self.metrics.active.set(len(self._tasks))

    async def _run_episode(
        self, entry_id: bytes, spec: EpisodeSpec, runner: EpisodeRunner, agent: Agent
    ) -> None:
        try:
            result = await runner.run()
            if runner.log is not None:
                await runner.log.write()
        except asyncio.CancelledError:
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
            self._control_ids.pop(spec.episode_id, None)
            self._job_ids.pop(spec.episode_id, None)
            shard_streams = self._control_streams.get(self.keys.shard_of(spec.episode_id), {})
            shard_streams.pop(self.keys.control(spec.episode_id), None)
            self.metrics.active.set(len(self._tasks))
            with contextlib.suppress(Exception):
                await agent.aclose()
        self.metrics.episodes.labels(result.environment, result.outcome).inc()
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        backoff = 0.05
        for _ in range(12):  # ride out a Redis restart; an un-acked job is re-run later
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.xack(self.keys.jobs(), WORKER_GROUP, entry_id)
                pipe.delete(self.keys.control(spec.episode_id))
                pipe.hset(self.keys.episode(spec.episode_id), "status", "finished")
                await pipe.execute()
                break
            except RedisError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _shutdown(self) -> None:
        if not self._tasks:
            return
        tasks = list(self._tasks.values())
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _read_control(self, shard: int, stop: asyncio.Event) -> None:
        """Route this shard's control entries (verdicts, recoveries) to episode inboxes."""
        while not stop.is_set():
            streams = dict(self._control_streams.get(shard, {}))
            if not streams:
                await asyncio.sleep(self.settings.block_ms / 1000)
                continue
            ids = {stream: self._control_ids[ep] for stream, ep in streams.items()}
            try:
                reply = await self.redis.xread(ids, count=200, block=self.settings.block_ms)
            except RedisError as exc:
                log.warning("worker control reader: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for stream, entries in stream_entries(reply):
                episode_id = streams.get(stream, "")
                inbox = self._inboxes.get(episode_id)
                if inbox is None:
                    continue  # the episode ended meanwhile
                for entry_id, fields in entries:
                    self._control_ids[episode_id] = entry_id
                    try:
                        inbox.put_nowait(decode(fields))
                    except BadEntry as exc:
                        log.error("bad control entry for %s: %s", episode_id, exc)
