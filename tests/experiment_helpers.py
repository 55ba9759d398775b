"""Small experiment configs and readers shared by the experiment, report and search tests."""

from pathlib import Path
from typing import Any

import orjson

from monitor.experiments.config import ExperimentConfig, parse_config


def small_config(name: str = "t", **overrides: Any) -> ExperimentConfig:
    """Reference + drifting agents, one environment, two mitigations, two seeds."""
    data: dict[str, Any] = {
        "name": name,
        "models": [{"kind": "reference"}, {"kind": "drifting", "options": {"flip_step": 12}}],
        "environments": ["multiobjective-homeostasis"],
        "mitigations": ["none", "savepoint-recovery"],
        "seeds": [1, 2],
        "steps": 30,
        "concurrency": 8,
    }
    data.update(overrides)
    return parse_config(data)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
