"""``runaway-monitor status``: live workers and detectors from their heartbeats, shard
owners, lag, pending and dead-letter counts; non-zero once a shard has no live owner."""

import asyncio
import json
import sys

from monitor.commands.status import collect, exit_code, render
from tests.pipeline_helpers import process_env, running_worker, spec, start_process
from tests.waiting import wait_for
from workers.jobs import submit_jobs
from workers.worker import Worker


async def status(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The real command, as a script would run it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "status",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode in (0, 1), err.decode()[-2000:]
    return proc.returncode or 0, out.decode()


async def test_status_lists_a_running_worker_and_detector(redis, settings):
    settings = settings.model_copy(update={"shutdown_grace_s": 0.0})
    keys = settings.keys
    await redis.xadd(keys.deadletter(1), {"reason": "x"})  # counted per shard
    await redis.xadd(keys.jobs_deadletter(), {"reason": "y"})
    worker = Worker(redis, settings, name="st-worker")
    async with running_worker(redis, settings, worker):
        long = [spec(f"long{i}", "homeostasis", steps=100_000, seed=i) for i in range(2)]
        await submit_jobs(redis, keys, long)

        async def both_seen() -> dict | None:
            report = await collect(redis, settings)
            busy = [w for w in report["workers"] if w["live"] and w["episodes"] == 2]
            owned = [
                d
                for d in report["detectors"]
                if d["live"] and d["shards"] == [0, 1] and d["last_batch_age_s"] is not None
            ]
            return report if busy and owned and exit_code(report) == 0 else None

        report = await wait_for(both_seen, 15, "a busy worker and a scoring detector")
    (w,) = report["workers"]
    assert (w["name"], w["concurrency"], w["errors"]) == ("st-worker", settings.concurrency, 0)
    assert 0 <= w["heartbeat_age_s"] < settings.heartbeat_ttl_s
    (d,) = report["detectors"]
    assert d["name"] == "test-detector" and d["errors"] == 0
    assert [s["owner"] for s in report["shards"]] == ["test-detector"] * 2
    assert [s["deadletters"] for s in report["shards"]] == [0, 1]
    assert all(s["lag"] is not None and s["pending"] >= 0 for s in report["shards"])
    assert report["jobs"]["running"] == 2 and report["jobs"]["deadletters"] == 1
    text = render(report)
    assert "workers: 1 live, 0 stale" in text and "episodes 2/" in text
    assert "NO LIVE OWNER" not in text
    after = await collect(redis, settings)  # stopped gracefully: gone, not stale
    assert after["workers"] == [] and after["detectors"] == []
    assert exit_code(after) == 1 and all(s["owner"] is None for s in after["shards"])


async def test_status_goes_non_zero_once_a_killed_detectors_heartbeat_expires(redis, settings):
    # a long lease: the shards still name the dead detector; only its heartbeat tells
    settings = settings.model_copy(update={"claim_idle_ms": 60_000, "heartbeat_ttl_s": 1.0})
    env = process_env(settings, heartbeat_ttl_s=1.0)
    detector = await start_process("detector", env)
    try:

        async def healthy() -> dict | None:
            report = await collect(redis, settings)
            owned = [d for d in report["detectors"] if d["live"] and d["shards"] == [0, 1]]
            return report if exit_code(report) == 0 and owned else None

        await wait_for(healthy, 60, "a live detector owning both shards")
        code, out = await status(env, "--json")  # the command says so too
        assert code == 0, out
        name = json.loads(out)["detectors"][0]["name"]
        assert name.endswith(f":{detector.pid}:detector")
        detector.kill()  # SIGKILL: no graceful release, the heartbeat key just expires
        await detector.wait()

        async def failing() -> bool:
            return exit_code(await collect(redis, settings)) == 1

        await wait_for(failing, 20, "a shard without a live owner once the heartbeat expired")
        code, out = await status(env, "--json")
        assert code == 1, out
        report = json.loads(out)
    finally:
        if detector.returncode is None:
            detector.kill()
            await detector.wait()
    assert report["detectors"] == [
        {"name": name, "live": False, "heartbeat_age_s": report["detectors"][0]["heartbeat_age_s"]}
    ]
    assert [(s["owner"], s["owner_live"]) for s in report["shards"]] == [(name, False)] * 2
    code, text = await status(env)
    assert code == 1
    assert "detectors: 0 live, 1 stale" in text and text.count("NO LIVE OWNER") == 2


def test_status_without_a_reachable_redis_exits_2(monkeypatch, capsys):
    from monitor.cli import main
    from tests.serve_helpers import free_port

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("RUNAWAY_REDIS_URL", raising=False)
    assert main(["status"]) == 2
    assert "status needs REDIS_URL" in capsys.readouterr().err
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")  # nobody
    assert main(["status", "--json"]) == 2
    err = capsys.readouterr().err
    assert "cannot read Redis" in err and "hunter2" not in err
