"""Commands that own their Redis stop when it dies, and every command ends on a signal
(issue 20, items 11 and 12): real processes, the embedded redis-server killed with
SIGKILL, exit status and time measured from outside."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.serve_helpers import ROOT, serve_env, serve_process

DEMO = [sys.executable, "-m", "monitor", "demo", "--episodes", "50", "--steps", "200"]


def _embedded_child(pid: int, limit_s: float = 30) -> tuple[int, str]:
    """(pid, unix socket) of the redis-server a command started, once it answers."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            # redis-server retitles itself: "/usr/bin/redis-server unixsocket:/tmp/.../redis.sock"
            title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "redis-server" in title and "unixsocket:" in title:
                sock = title.split("unixsocket:", 1)[1].split()[0]
                try:
                    if redis.Redis(unix_socket_path=sock).dbsize() > 0:  # it is in use
                        return int(child), sock
                except redis.RedisError:
                    pass
        time.sleep(0.05)
    raise AssertionError("the command never started its redis-server")


def _wait_exit(proc: subprocess.Popen, limit_s: float) -> float:
    started = time.monotonic()
    try:
        proc.wait(limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {limit_s} s later") from None
    return time.monotonic() - started


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_demo_stops_when_its_redis_dies(tmp_path):
    err = tmp_path / "demo.err"
    with err.open("wb") as f:
        proc = subprocess.Popen(
            DEMO, cwd=ROOT, env=serve_env(), stdout=subprocess.DEVNULL, stderr=f
        )
    child, _ = _embedded_child(proc.pid)
    os.kill(child, signal.SIGKILL)
    took = _wait_exit(proc, 10)
    text = err.read_text()
    assert proc.returncode == 1, text[-2000:]
    assert took < 6
    (error,) = _errors(text)
    assert "embedded redis-server" in error and "signal 9" in error


def test_serve_stops_when_its_redis_dies(tmp_path):
    with serve_process(tmp_path, RUNAWAY_SHARDS="2") as (url, proc, log):
        child, _ = _embedded_child(proc.pid)
        os.kill(child, signal.SIGKILL)
        took = _wait_exit(proc, 10)
        assert proc.returncode == 1 and took < 6, log.read_text()[-2000:]
        assert len(_errors(log.read_text())) == 1
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            raise AssertionError("/healthz still answers")
        except OSError:
            pass


def test_sigterm_ends_the_demo_and_a_second_one_at_once(tmp_path):
    long_demo = [*DEMO[:-1], "100000"]
    err = tmp_path / "demo.err"
    for signals, limit_s in ((1, 15), (2, 3)):
        with err.open("wb") as f:
            env = serve_env(RUNAWAY_SHUTDOWN_GRACE_S="1")  # episodes get 1 s to finish
            proc = subprocess.Popen(
                long_demo, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=f
            )
        child, _ = _embedded_child(proc.pid)
        proc.send_signal(signal.SIGTERM)
        if signals == 2:  # once the first one is handled
            _wait_for(lambda: "SIGTERM: stopping" in err.read_text(), 10)
            proc.send_signal(signal.SIGTERM)
        took = _wait_exit(proc, limit_s)
        stderr = err.read_text()
        assert took < limit_s and proc.returncode != 0, stderr[-2000:]
        if signals == 2:
            assert proc.returncode == 128 + signal.SIGTERM
        assert not Path(f"/proc/{child}").exists() or _zombie(child), "its redis-server is left"


def _wait_for(condition, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
