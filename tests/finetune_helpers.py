"""A toy corrective dataset for the fine-tuning tests: drifting agents, exported."""

import os
from pathlib import Path

from monitor.cli import main as cli


def toy_dataset(root: Path, redis_url: str, seeds: int = 4, steps: int = 8) -> Path:
    """``export-dataset`` output of homeostasis episodes that all flip at step 4.

    Seeds 1..seeds-1 train (homeostasis), the last seed is held out.
    """
    config = root / "toy.yaml"
    seed_list = ", ".join(str(s) for s in range(1, seeds + 1))
    config.write_text(
        "name: toy-corrective\nmodels: [{kind: drifting, options: {flip_step: 4}}]\n"
        f"environments: [homeostasis]\nseeds: [{seed_list}]\nsteps: {steps}\n"
    )
    old = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = redis_url
    try:
        assert cli(["experiment", str(config), "--out", str(root / "results")]) == 0
    finally:
        if old is None:
            os.environ.pop("REDIS_URL")
        else:
            os.environ["REDIS_URL"] = old
    out = root / "dataset"
    assert cli(["export-dataset", str(root / "results"), "--out", str(out)]) == 0
    return out
