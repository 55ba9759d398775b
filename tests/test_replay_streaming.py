"""replay through Redis and the streaming detector gives what the offline scorer gives."""

import json
import os
import subprocess
import sys

from monitor.commands.replay import env_mismatches, offline_backend
from monitor.replay_streaming import score_streaming
from monitor.trajectories import load_trajectory
from tests.conftest import RECORDINGS


def test_streaming_equals_offline_on_all_recordings(settings):
    trajectories = [load_trajectory(p) for p in RECORDINGS]
    online = [r.summary() for r in score_streaming(trajectories, settings)]
    offline = [r.summary() for r in offline_backend(trajectories)]
    assert online == offline
    assert sum(r["flipped"] for r in online) >= 19  # the labelled flips are there
    assert all(env_mismatches(t) == 0 for t in trajectories)


def test_replay_reads_the_projects_own_episode_logs(settings, tmp_path):
    env = {**os.environ, "REDIS_URL": settings.redis_url, "RUNAWAY_KEY_PREFIX": settings.key_prefix}
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--env",
            "multiobjective-homeostasis",
            "--agent",
            "drifting",
            "--flip-step",
            "12",
            "--steps",
            "30",
            "--episodes",
            "2",
            "--mitigation",
            "none",
            "--log-dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    logs = sorted(tmp_path.glob("*.jsonl"))
    assert len(logs) == 2
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", "--jsonl", "--check-env", *map(str, logs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["flipped"] for r in rows] == [True, True]
    assert all(12 <= r["flip_step"] <= 14 for r in rows)
    assert all(r["env_mismatches"] == 0 for r in rows)
    assert all(r["benchmark"] == "multiobjective-homeostasis" for r in rows)
