"""``runaway-monitor serve`` as a user runs it: one command, embedded Redis, in-process
detector; the sync and async clients get verdicts; SIGTERM stops it cleanly. Also the
bind guard refuses a public address without a token."""

import asyncio
import signal
import subprocess
import sys

import pytest

from monitor.client import AsyncMonitor, Monitor, MonitorError
from tests.serve_helpers import ROOT, serve_env, serve_process


@pytest.fixture
def served(tmp_path):
    with serve_process(tmp_path, RUNAWAY_SHARDS="2") as (url, proc, _):
        yield url, proc


def test_serve_embedded_with_clients(served):
    url, proc = served
    mon = Monitor(url, timeout_s=10)
    ep = mon.register(environment="multiobjective-homeostasis", labels={"model": "test"})
    latencies = []
    for step in range(1, 21):
        v = mon.step(ep, step, {"A": 110, "B": 120}, {"A": 1, "B": 1}, text="prompt text")
        assert v.verdict == "continue" and v.fail_mode is None
        latencies.append(v.raw["latency_ms"])
    with pytest.raises(MonitorError) as err:
        mon.step(ep, 20, {"A": 110, "B": 120}, {"A": 1, "B": 1})
    assert err.value.status == 409 and err.value.field == "step"

    async def use_async() -> None:
        async with AsyncMonitor(url, timeout_s=10) as amon:
            ep2 = await amon.register(
                objectives=[{"name": "x", "kind": "homeostatic", "target": 10, "band": 2}]
            )
            v = await amon.step(ep2, 1, {"x": 10}, {"x": 0})
            assert v.verdict == "continue"
            await amon.finish(ep2)

    asyncio.run(use_async())
    mon.finish(ep)
    latencies.sort()
    print(f"verdict latency over 20 steps: p50 {latencies[10]:.1f} ms, max {latencies[-1]:.1f} ms")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_serve_refuses_public_bind_without_token():
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=serve_env(),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"RUNAWAY_API_TOKEN" in proc.stderr
