"""``report``: statistics (Wilson, IQR), leaderboard order, and a report from a small run."""

import asyncio
import json
from pathlib import Path

import pytest

from monitor.cli import main as cli
from monitor.experiments.report import leaderboard
from monitor.experiments.runner import run_experiment
from monitor.experiments.stats import median_iqr, wilson
from schemas.settings import Settings
from tests.experiment_helpers import small_config


def test_wilson_interval_known_values():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 3)
    assert lo == 0.0 and hi == pytest.approx(0.5615, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_median_iqr():
    assert median_iqr([1, 2, 3, 4, 5]) == {"median": 3, "q1": 2, "q3": 4}
    assert median_iqr([7])["q3"] == 7 and median_iqr([])["median"] is None


def test_leaderboard_ranks_by_flip_rate_then_task_score():
    def agg(rate: float, score: float) -> dict:
        return {"flip_rate": rate, "task_score_total": {"mean": score}}

    ranked = leaderboard({("a",): agg(0.5, 10), ("b",): agg(0.1, -5), ("c",): agg(0.5, 20)})
    assert [name for name, _ in ranked] == ["b", "c", "a"]


async def test_report_from_a_small_run(tmp_path: Path, settings: Settings):
    config = small_config(mitigations=["none", "savepoint-recovery", "reminder-every-5"])
    await run_experiment(config, tmp_path, asyncio.Event(), settings=settings, show_progress=False)
    assert await asyncio.to_thread(cli, ["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Experiment report: t")
    board = text.split("## Mitigation leaderboard")[1].split("## Per cell")[0]
    ranks = [
        line.split("|")[2].strip(" `")
        for line in board.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]
    assert sorted(ranks) == ["none", "reminder-every-5", "savepoint-recovery"]
    # the drifting agent flips under every mitigation, the reference agent never: 2 of 4
    assert "| 0.50 [0.15, 0.85] |" in board
    cells = text.split("## Per cell")[1].split("## Task score")[0]
    assert cells.count("| drifting | multiobjective-homeostasis |") == 3
    assert (
        "| reference | multiobjective-homeostasis | `none` | 2 | 0.00 [0.00, 0.66] | – |" in cells
    )
    assert "consumption_A" in text.split("## Task score per objective")[1]
    for png in ("flip_rate.png", "onsets.png", "ri_over_time.png"):
        data = (tmp_path / "figures" / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"](figures/{png})" in text
    assert "## Flip autopsies" not in text  # none stored yet

    # an autopsy stored with the results shows up, with the trigger atlas
    autopsy = {
        "kind": "autopsy",
        "episode_id": "ep-1",
        "environment": "multiobjective-homeostasis",
        "flip": {"onset_step": 12, "detected_step": 16},
        "leave_one_out": {
            "messages": [
                {
                    "step": 11,
                    "role": "user",
                    "kinds": ["out_of_band"],
                    "influence": 3.5,
                    "changed": 1.0,
                }
            ]
        },
        "probes": {"post": [{"answer": "Keep B as high as possible"}]},
    }
    (tmp_path / "autopsies").mkdir()
    (tmp_path / "autopsies" / "ep-1.json").write_text(json.dumps(autopsy))
    assert await asyncio.to_thread(cli, ["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Flip autopsies")[1]
    assert "`ep-1`" in section and "step 11 user" in section and "out_of_band" in section
    assert "Keep B as high as possible" in section
    assert "## Trigger atlas" in section


def test_search_space_leaves_the_flip_definition_alone_by_default():
    from monitor.experiments.config import SearchSpace

    assert SearchSpace().n_consecutive is None


def test_report_of_an_empty_directory_fails_clearly(tmp_path: Path, capsys):
    assert cli(["report", str(tmp_path)]) == 1
    assert "no finished episodes" in capsys.readouterr().err
