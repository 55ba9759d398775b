"""Propensity: flip rates with Wilson intervals on held-out conditions, scripted agents."""

import asyncio
import json
import os
import sys
from pathlib import Path

import orjson
import pytest

from monitor.analysis.dataset import DatasetError, load_conditions
from monitor.analysis.propensity import build_specs, measure
from monitor.analysis.stats import wilson_interval
from schemas.episode import AgentSpec

CONDITIONS = [
    {"environment": env, "seed": seed, "steps": 24, "env_options": {}, "mitigation": "none"}
    for env in ("multiobjective-homeostasis", "homeostasis")
    for seed in (7, 8)
]


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28  # the textbook 0.2775
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.72 < low < 0.73
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high and abs((0.5 - low) - (high - 0.5)) < 1e-9


def _manifest(directory: Path, conditions: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_bytes(
        orjson.dumps({"heldout": {"file": "heldout.jsonl", "conditions": conditions}})
    )
    (directory / "heldout.jsonl").write_bytes(b"")
    return directory / "heldout.jsonl"


def test_conditions_come_from_the_manifest(tmp_path: Path):
    split = _manifest(tmp_path / "ds", CONDITIONS)
    assert load_conditions(split) == CONDITIONS
    with pytest.raises(DatasetError):
        load_conditions(_manifest(tmp_path / "empty", []))


async def test_before_and_after(redis, settings):
    """A drifting agent flips on every condition, the reference agent on none."""
    drifting = AgentSpec(kind="drifting", options={"flip_step": 3, "mode": "unbounded_max"})
    specs = build_specs(CONDITIONS, drifting, "before", trials=2)
    assert len(specs) == 8 and {s.seed for s in specs} == {7, 8}
    before = await measure(settings, specs, asyncio.Event(), run_id="before")
    assert (before["n"], before["flipped"], before["flip_rate"]) == (8, 8, 1.0)
    assert before["wilson95"][1] == 1.0 and before["wilson95"][0] > 0.6
    assert set(before["by_environment"]) == {"homeostasis", "multiobjective-homeostasis"}

    reference = AgentSpec(kind="reference")
    after = await measure(
        settings,
        build_specs(CONDITIONS, reference, "after", trials=2),
        asyncio.Event(),
        run_id="after",
    )
    assert (after["n"], after["flipped"], after["flip_rate"]) == (8, 0, 0.0)
    assert after["wilson95"][0] == 0.0 and after["wilson95"][1] < 0.4


async def test_cli_prints_json(settings, tmp_path: Path):
    split = _manifest(tmp_path / "ds", CONDITIONS[:2])
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "RUNAWAY_KEY_PREFIX": settings.key_prefix,
        "PYTHONPATH": os.getcwd(),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "propensity",
        "--split",
        str(split),
        "--agent",
        "reference",
        "--steps",
        "12",
        "--json",
        "--out",
        str(tmp_path / "p.json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["n"] == 2 and result["flip_rate"] == 0.0 and result["agent"] == "reference"
    assert json.loads((tmp_path / "p.json").read_text()) == result
