"""The worker process: takes episode jobs from Redis and runs many of them concurrently.

Jobs come from the ``jobs`` stream through the ``workers`` consumer group, at most
``concurrency`` at a time. One reader task per shard follows the control streams of the
shard's active episodes and routes verdicts and recovery commands to their runners. A
job is acked when its episode has ended; on shutdown, episodes get ``shutdown_grace_s``
to finish, the rest are cancelled and their jobs left un-acked, i.e. handed back.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.connections import ensure_group, stream_entries
from monitor.metrics import WorkerMetrics
from schemas.episode import EpisodeSpec
from schemas.keys import WORKER_GROUP
from schemas.settings import Settings
from schemas.wire import BadEntry, decode, decode_job
from workers.agents.base import Agent
from workers.environments.base import Environment
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


def default_agent_factory(spec: EpisodeSpec, env: Environment) -> Agent:
    from workers.agents import create_agent

    if spec.agent is None:
        raise ValueError("the episode spec names no agent")
    return create_agent(spec.agent, seed=spec.seed)


class Worker:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        metrics: WorkerMetrics | None = None,
        name: str = "worker",
        env_factory: EnvFactory = default_env_factory,
        agent_factory: AgentFactory = default_agent_factory,
        on_result: Callable[[EpisodeResult], None] | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self.metrics = metrics or WorkerMetrics()
        self.name = name
        self.env_factory = env_factory
        self.agent_factory = agent_factory
        self.on_result = on_result
        self.publisher = StreamPublisher(redis)
        self.results: list[EpisodeResult] = []
        self.errors: list[str] = []
        self._inboxes: dict[str, asyncio.Queue[Any]] = {}
        self._control_ids: dict[str, bytes] = {}
        # shard -> {control stream: episode id}, kept up to date as episodes start and end
        self._control_streams: dict[int, dict[str, str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runners: dict[str, EpisodeRunner] = {}

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
        try:
            while not stop.is_set():
                free = self.settings.concurrency - len(self._tasks)
                if free <= 0:
                    await self._wait_any(stop)
                    continue
                try:
                    reply = await self.redis.xreadgroup(
                        WORKER_GROUP, self.name, {self.keys.jobs(): cursor},
                        count=free, block=None if cursor == "0" else self.settings.block_ms,
                    )  # fmt: skip
                except RedisError as exc:
                    log.warning("worker: redis unavailable (%s); retrying", exc)
                    await asyncio.sleep(0.5)
                    continue
                entries = [e for _, es in stream_entries(reply) for e in es]
                if not entries and cursor == "0":
                    cursor = ">"
                    continue
                for entry_id, fields in entries:
                    await self._start(entry_id, fields)
                if not entries and until_idle:
                    if not self._tasks:
                        break
                    await self._wait_any(stop)
        finally:
            await self._shutdown()
            readers_stop.set()
            await asyncio.gather(*readers, return_exceptions=True)
            await self.publisher.aclose()
        return self.results

    async def _wait_any(self, stop: asyncio.Event) -> None:
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait([stop_wait, *self._tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()

    async def _start(self, entry_id: bytes, fields: dict[Any, Any]) -> None:
        try:
            spec = decode_job(fields)
            env = self.env_factory(spec)
            agent = self.agent_factory(spec, env)
        except (BadEntry, ValueError) as exc:
            self.errors.append(f"job {entry_id.decode()}: {exc}")
            log.error("job %s rejected: %s", entry_id.decode(), exc)
            await self.redis.xadd(
                f"{self.keys.jobs()}:deadletter",
                {"reason": str(exc)[:500], "entry_id": entry_id},
                maxlen=self.settings.deadletter_maxlen,
                approximate=True,
            )
            await self.redis.xack(self.keys.jobs(), WORKER_GROUP, entry_id)
            return
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._inboxes[spec.episode_id] = inbox
        self._control_ids[spec.episode_id] = b"0-0"
        shard = self.keys.shard_of(spec.episode_id)
        self._control_streams.setdefault(shard, {})[self.keys.control(spec.episode_id)] = (
            spec.episode_id
        )
        runner = EpisodeRunner(spec, env, agent, self.publisher, inbox, self.settings, self.metrics)
        task = asyncio.create_task(self._run_episode(entry_id, spec, runner, agent))
        self._tasks[spec.episode_id] = task
        self._runners[spec.episode_id] = runner
        self.metrics.active.set(len(self._tasks))

    async def _run_episode(
        self, entry_id: bytes, spec: EpisodeSpec, runner: EpisodeRunner, agent: Agent
    ) -> None:
        try:
            result = await runner.run()
        except asyncio.CancelledError:
            self.metrics.episodes.labels(runner.labels[0], "cancelled").inc()
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
            shard_streams = self._control_streams.get(self.keys.shard_of(spec.episode_id), {})
            shard_streams.pop(self.keys.control(spec.episode_id), None)
            self.metrics.active.set(len(self._tasks))
            with contextlib.suppress(Exception):
                await agent.aclose()
        self.metrics.episodes.labels(result.environment, result.outcome).inc()
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        with contextlib.suppress(RedisError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.keys.jobs(), WORKER_GROUP, entry_id)
            pipe.delete(self.keys.control(spec.episode_id))
            await pipe.execute()

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
