"""The demo command, as a user runs it."""

import json
import os
import subprocess
import sys


def test_demo_json_summary_adds_up(settings):
    env = {**os.environ, "REDIS_URL": settings.redis_url, "RUNAWAY_KEY_PREFIX": settings.key_prefix}
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--episodes", "20", "--steps", "40", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    for key in (
        "episodes",
        "steps",
        "flips",
        "recoveries",
        "steps_per_second",
        "detection_lag_ms_p50",
        "detection_lag_ms_p99",
        "errors",
    ):
        assert isinstance(summary[key], int | float), key
    assert summary["episodes"] == 20
    assert sum(summary["outcomes"].values()) == 20
    assert sum(summary["episodes_by_environment"].values()) == 20
    assert len(summary["episodes_by_environment"]) == 6  # all six environments
    assert sum(summary["steps_by_environment"].values()) == summary["steps"]
    for env, steps in summary["steps_by_environment"].items():
        played = summary["episodes_by_environment"][env] * 40
        # only sustainability can end early (stock exhausted)
        assert steps == played if env != "sustainability" else 0 < steps <= played
    assert summary["flips"] > 0
    assert 0 < summary["recoveries"] <= summary["flips"]
    assert summary["errors"] == 0
    assert summary["detection_lag_ms_p50"] <= summary["detection_lag_ms_p99"]


def test_demo_rejects_bad_arguments():
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--episodes", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--episodes" in out.stderr


def test_worker_without_redis_url_says_why():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RUNAWAY_REDIS_URL")}
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2 and "REDIS_URL" in out.stderr
