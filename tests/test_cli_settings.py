"""Every number on the command line goes through the settings model: a bad one exits 2
with a message naming it, before anything starts (``model_copy`` used to skip this)."""

import subprocess
import sys

import pytest

from monitor.cli import main


@pytest.fixture(autouse=True)
def _redis_url(monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)  # so the commands get past "needs REDIS_URL"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["worker", "--concurrency", "-5"], "--concurrency -5"),
        (["worker", "--concurrency", "0"], "--concurrency 0"),
        (["worker", "--metrics-port", "70000"], "--metrics-port 70000"),
        (["detector", "--metrics-port", "-1"], "--metrics-port -1"),
        (["serve", "--port", "65536"], "--port 65536"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(argv, named, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err, err
    assert "greater than or equal" in err or "less than or equal" in err


@pytest.mark.parametrize("command", ["worker", "detector", "demo"])
def test_a_bad_environment_variable_exits_2_naming_it(command, monkeypatch, capsys):
    monkeypatch.setenv("RUNAWAY_SHARDS", "0")
    assert main([command]) == 2
    assert "RUNAWAY_SHARDS" in capsys.readouterr().err


def test_the_worker_process_refuses_negative_concurrency():
    """Through the real entry point, as a user types it."""
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "worker", "--concurrency", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--concurrency -5: Input should be greater than or equal to 1" in proc.stderr


def test_a_secret_from_the_environment_is_not_echoed(monkeypatch, capsys):
    monkeypatch.setenv("RUNAWAY_MODEL_TIMEOUT_S", "sk-secret-looking")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert "RUNAWAY_MODEL_TIMEOUT_S" in err and "sk-secret-looking" not in err
