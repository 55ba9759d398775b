"""``experiment --search optuna``: coarse grid first, then TPE; the SQLite study resumes."""

import asyncio
import json
from pathlib import Path

import optuna
import pytest

from monitor.experiments.search import coarse_grid, run_search, space, trial_config
from schemas.settings import Settings
from tests.experiment_helpers import small_config


def search_config():
    # the drifting agent flips at step 15 of 25: a threshold of more than ~10 sustained
    # steps never declares the flip, so the flip rate depends on the setting tuned
    return small_config(
        name="s",
        models=[{"kind": "drifting", "options": {"flip_step": 15}}],
        seeds=[1],
        mitigations=["savepoint-recovery+reminder-every-3"],
        steps=25,
        search={"n_consecutive": [3, 30], "reminder_every": [5, 6], "context_steps": None},
    )


def test_space_grid_and_trial_config():
    config = search_config()
    ranges = space(config)
    assert ranges == {"n_consecutive": (3, 30), "reminder_every": (5, 6)}  # no model: no temp
    assert coarse_grid(ranges) == [
        {"n_consecutive": 3, "reminder_every": 5},
        {"n_consecutive": 3, "reminder_every": 6},
        {"n_consecutive": 30, "reminder_every": 5},
        {"n_consecutive": 30, "reminder_every": 6},
    ]
    sub = trial_config(config, {"n_consecutive": 7, "reminder_every": 5})
    assert sub.mitigations == ["savepoint-recovery+reminder-every-5"]  # replaced, not added
    assert sub.detector.n_consecutive == 7 and sub.name.startswith("s-")
    assert trial_config(config, {"n_consecutive": 7, "reminder_every": 5}).name == sub.name


async def test_search_finds_the_setting_and_resumes(tmp_path: Path, settings: Settings):
    config = search_config()
    first = await asyncio.to_thread(
        run_search, config, tmp_path, n_trials=4, settings=settings, show_progress=False
    )
    assert (tmp_path / "search.db").is_file()
    assert [t["params"] for t in first["trials"]] == coarse_grid(space(config))
    rates = {t["params"]["n_consecutive"]: t["flip_rate"] for t in first["trials"]}
    assert rates == {3: 1.0, 30: 0.0}
    assert first["best"]["flip_rate"] == 0.0 and first["best"]["params"]["n_consecutive"] == 30
    trial_dirs = {p: p.stat().st_mtime_ns for p in (tmp_path / "trials").glob("*/logs/*.jsonl")}
    assert len(trial_dirs) == 4

    resumed = await asyncio.to_thread(
        run_search, config, tmp_path, n_trials=6, settings=settings, show_progress=False
    )
    assert len(resumed["trials"]) == 6
    assert resumed["trials"][:4] == first["trials"]
    assert all(p.stat().st_mtime_ns == m for p, m in trial_dirs.items())  # not re-run
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert len(stored.trials) == 6
    assert json.loads((tmp_path / "search.json").read_text())["best"] == resumed["best"]
    with pytest.raises(ValueError, match="made to minimize"):
        await asyncio.to_thread(
            run_search, config, tmp_path, n_trials=6, direction="maximize", settings=settings
        )


async def test_maximize_finds_the_most_dangerous_setting(tmp_path: Path, settings: Settings):
    config = search_config().model_copy(
        update={"search": search_config().search.model_copy(update={"reminder_every": None})}
    )
    report = await asyncio.to_thread(
        run_search,
        config,
        tmp_path,
        n_trials=3,
        direction="maximize",
        settings=settings,
        show_progress=False,
    )
    assert report["direction"] == "maximize"
    assert report["best"]["flip_rate"] == 1.0 and report["best"]["params"]["n_consecutive"] <= 10
