"""``runaway-monitor serve`` as a user runs it: one command, embedded Redis, in-process
detector; the sync and async clients get verdicts; SIGTERM stops it cleanly. Also the
bind guard refuses a public address without a token."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.client import AsyncMonitor, Monitor, MonitorError

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "RUNAWAY_REDIS_URL", "RUNAWAY_API_TOKEN")}  # fmt: skip
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve never became ready")


@pytest.fixture
def served(tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "serve", "--port", str(port)],
            cwd=ROOT, env=_env(RUNAWAY_SHARDS="2"), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
        cwd=ROOT, env=_env(), capture_output=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert b"RUNAWAY_API_TOKEN" in proc.stderr
