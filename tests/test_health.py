"""Worker and detector health: heartbeat keys with a TTL, and ``/readyz`` that answers 503
while Redis or the consumer group is missing or a loop is stuck."""

import asyncio

import aiohttp

from detectors.service import DetectorService
from monitor.embedded_redis import EmbeddedRedis
from schemas.health import Heartbeat, LoopWatch
from schemas.keys import WORKER_GROUP
from schemas.redis_io import connect
from tests.pipeline_helpers import process_env, running_worker, spec, start_process
from tests.serve_helpers import free_port
from tests.waiting import wait_for
from workers.jobs import submit_jobs
from workers.worker import Worker


def test_a_loop_without_progress_is_named_stuck():
    now = [100.0]
    watch = LoopWatch(stuck_after_s=5, clock=lambda: now[0])
    assert not watch.started
    watch.tick()
    watch.tick("shard 1")
    now[0] += 4
    watch.tick()
    assert watch.stuck() == []
    now[0] += 2
    assert watch.stuck() == ["shard 1"]
    watch.forget("shard 1")  # a shard handed back is no longer watched
    assert watch.stuck() == []
    watch.error(ConnectionError("gone"))
    beat = watch.heartbeat("detector", "d", shards=[0])
    assert (beat.errors, beat.last_error, beat.shards) == (1, "ConnectionError: gone", [0])


async def test_worker_heartbeat_and_readiness(redis, settings):
    settings = settings.model_copy(update={"shutdown_grace_s": 0.0})
    worker = Worker(redis, settings, name="hb-worker")
    before = await worker.readiness()  # not running, no jobs stream yet
    assert before["status"] == "not_ready"
    assert any("no stream" in r for r in before["reasons"])
    assert "the main loop has not started" in before["reasons"]
    await redis.xadd(settings.keys.jobs(), {"x": "1"})  # a stream, but no group on it
    no_group = await worker.readiness()
    assert any("no 'workers' consumer group" in r for r in no_group["reasons"])
    await redis.delete(settings.keys.jobs())
    key = settings.keys.heartbeat("worker", "hb-worker")
    async with running_worker(redis, settings, worker):
        await submit_jobs(redis, settings.keys, [spec("long", "homeostasis", steps=100_000)])

        async def beat_with_an_episode() -> Heartbeat | None:
            raw = await redis.get(key)
            beat = Heartbeat.model_validate_json(raw) if raw else None
            return beat if beat and beat.episodes == 1 else None

        beat = await wait_for(beat_with_an_episode, 10, "a heartbeat with 1 episode in flight")
        assert beat.concurrency == settings.concurrency and beat.last_batch_ts is not None
        assert 0 < await redis.pttl(key) <= settings.heartbeat_ttl_s * 1000
        ready = await worker.readiness()
        assert ready["status"] == "ready", ready
        await redis.xgroup_destroy(settings.keys.jobs(), WORKER_GROUP)
        missing = await worker.readiness()  # unready until an operator recreates it
        assert missing["status"] == "not_ready"
        assert any("no 'workers' consumer group" in r for r in missing["reasons"])
        # recreated at the end of the stream: the running job is not delivered again
        await redis.xgroup_create(settings.keys.jobs(), WORKER_GROUP, id="$")

        async def ready_again() -> bool:
            return (await worker.readiness())["status"] == "ready"

        await wait_for(ready_again, 10, "the worker to be ready once its group is back")
    assert await redis.get(key) is None  # a graceful stop leaves no stale heartbeat
    assert await redis.zscore(settings.keys.heartbeats("worker"), "hb-worker") is None


async def test_detector_readiness_names_a_stuck_loop(settings):
    """Redis paused (CLIENT PAUSE, on a private server): the loops stop making progress,
    /readyz says so, and it is ready again once Redis answers."""
    server = EmbeddedRedis()
    await server.start()
    redis = connect(server.url)
    settings = settings.model_copy(
        update={"redis_url": server.url, "loop_stuck_s": 0.5, "redis_op_timeout_s": 0.2}
    )
    detector = DetectorService(redis, settings, name="stuck-detector")
    stop = asyncio.Event()
    task = asyncio.create_task(detector.run(stop))
    try:

        async def ready() -> bool:
            return (await detector.readiness())["status"] == "ready"

        await wait_for(ready, 10, "the detector to become ready")
        assert (await detector.readiness())["shards"] == [0, 1]
        pauser = connect(server.url)
        await pauser.execute_command("CLIENT", "PAUSE", 3000, "ALL")

        async def stuck() -> list[str]:
            reasons = (await detector.readiness())["reasons"]
            return [r for r in reasons if "made no progress" in r]

        named = await wait_for(stuck, 5, "a stuck loop to be reported")
        assert any("'main'" in r or "'shard" in r for r in named)
        await pauser.execute_command("CLIENT", "UNPAUSE")
        await pauser.aclose()
        await wait_for(ready, 10, "the detector to be ready again")
    finally:
        stop.set()
        await task
        await redis.aclose()
        await server.stop()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    try:
        async with session.get(url) as resp:
            return resp.status, await resp.json()
    except aiohttp.ClientError:
        return 0, {}


async def test_readyz_of_real_processes(redis, settings, tmp_path):
    """A detector process answers /readyz 200 with its shards; one whose Redis is not
    there answers 503 naming it, while /healthz (shallow) still says ok."""
    good_port, bad_port = free_port(), free_port()
    good_log, bad_log = tmp_path / "good.log", tmp_path / "bad.log"
    good = await start_process(
        "detector", process_env(settings, metrics_port=good_port), log=good_log
    )
    bad_env = process_env(settings, metrics_port=bad_port)
    bad_env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    bad = await start_process("detector", bad_env, log=bad_log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def good_ready() -> dict | None:
                assert good.returncode is None, good_log.read_text()[-2000:]
                status, body = await _get(session, f"http://127.0.0.1:{good_port}/readyz")
                assert status in (0, 200, 503), (status, body)
                return body if status == 200 and body["shards"] == [0, 1] else None

            body = await wait_for(good_ready, 30, "/readyz: 200, owning both shards")
            assert body["status"] == "ready" and body["reasons"] == []

            async def bad_unready() -> dict | None:
                assert bad.returncode is None, bad_log.read_text()[-2000:]
                status, body = await _get(session, f"http://127.0.0.1:{bad_port}/readyz")
                return body if status == 503 else None

            body = await wait_for(bad_unready, 30, "the Redis-less detector's /readyz: 503")
            assert any("redis unavailable" in r for r in body["reasons"])
            status, health = await _get(session, f"http://127.0.0.1:{bad_port}/healthz")
            assert (status, health) == (200, {"status": "ok"})
    finally:
        for proc in (good, bad):
            proc.terminate()
            await proc.wait()
