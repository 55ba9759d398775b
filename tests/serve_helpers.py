"""Running ``runaway-monitor serve`` as its own process in a test (embedded Redis)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(**extra: str) -> dict[str, str]:
    """The environment without any Redis or token settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "RUNAWAY_REDIS_URL", "RUNAWAY_API_TOKEN")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen, log: Path, limit_s: float = 30) -> None:
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


@contextlib.contextmanager
def serve_process(tmp_path: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """A ready ``serve`` on a free loopback port: (url, process, stderr log); SIGTERM after."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "serve", "--port", str(port)],
            cwd=ROOT,
            env=serve_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
