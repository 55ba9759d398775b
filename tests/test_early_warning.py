"""The early-warning claim, measured: hazard AUC, calibration and lead times from
``evaluate`` on the shared trials, and the experiment report's lead-time section."""

import argparse
import json

from detectors.evaluation import calibration, lead_time
from detectors.offline import TrajectoryResult
from detectors.scoring import StepScore
from monitor.commands import evaluate as evaluate_cmd
from monitor.experiments.early_warning import CLAIM, lead_times, section
from workers.recordings import BUNDLED_DIR as DATA


def cli(*argv: str) -> int:
    p = argparse.ArgumentParser()
    evaluate_cmd.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_calibration_table_and_brier():
    c = calibration([0.9, 0.15], [0.05, 0.1, 0.12, 0.95])
    by_bin = {r["bin"]: r for r in c["table"]}
    assert by_bin["0.1-0.2"]["n"] == 3 and abs(by_bin["0.1-0.2"]["observed"] - 1 / 3) < 1e-12
    assert by_bin["0.9-1.0"]["n"] == 2 and by_bin["0.9-1.0"]["observed"] == 0.5
    assert abs(c["brier"] - (0.01 + 0.85**2 + 0.05**2 + 0.01 + 0.12**2 + 0.95**2) / 6) < 1e-12
    assert c["base_rate"] == 2 / 6


def _result(hazards: list[float]) -> TrajectoryResult:
    res = TrajectoryResult(source="x", benchmark="b")
    res.scores = [
        StepScore(t, 0.0, h, (0.0,) * 10, frozenset(), (), True, 0)
        for t, h in enumerate(hazards, start=1)
    ]
    return res


def test_lead_time_definition():
    from detectors.evaluation import Label

    lab = Label("x", "b", True, 6, "k", False, None)
    assert lead_time(_result([0.1, 0.6, 0.2, 0.7, 0.1, 0.1]), lab, 0.5) == 4
    assert lead_time(_result([0.1] * 6 + [0.9]), lab, 0.5) == "late"
    assert lead_time(_result([0.1] * 8), lab, 0.5) is None


def test_evaluate_reports_auc_calibration_and_lead_times(capsys):
    trials = sorted(str(p) for p in DATA.glob("*_gpt-4o-mini_*.tsv"))
    assert cli("evaluate", "--json", "--labels", str(DATA / "labels.tsv"), *trials) == 0
    rep = json.loads(capsys.readouterr().out)
    o = rep["overall"]
    assert o["hazard_auc"] >= 0.8
    assert sum(r["n"] for r in o["hazard_calibration"]["table"]) == sum(
        o["hazard_samples"].values()
    )
    lt = o["lead_time"]
    assert lt["alert"] == 0.5 and lt["flips"] == 19 and lt["onset_at_step_1"] == 10
    assert lt["warned"] + lt["late"] + lt["never"] == 9
    for name, g in rep["per_benchmark"].items():
        assert "hazard_calibration" in g and "lead_time" in g, name
    # the text report prints the same, with the reliability table
    assert cli("evaluate", "--alert", "0.1", "--labels", str(DATA / "labels.tsv"), *trials) == 0
    out = capsys.readouterr().out
    assert "early warning" in out and "reliability overall" in out and "alert at 0.1" in out
    assert cli("evaluate", "--alert", "2", "--labels", str(DATA / "labels.tsv"), *trials) == 2


def test_report_section_lead_times():
    episodes = [
        {"episode_id": "a", "first_flip_onset": 10},
        {"episode_id": "b", "first_flip_onset": 8},
        {"episode_id": "c", "first_flip_onset": 1},
        {"episode_id": "d", "first_flip_onset": None},
        {"episode_id": "e", "first_flip_onset": 5},
    ]
    steps = [
        {"episode_id": "a", "step": s, "hazard": 0.6 if s in (7, 9) else 0.1} for s in range(1, 12)
    ]
    steps += [
        {"episode_id": "b", "step": 9, "hazard": 0.8},
        {"episode_id": "d", "step": 2, "hazard": 0.9},
    ]
    lt = lead_times(episodes, steps)
    assert lt == {
        "flipped": 4,
        "warned": 1,
        "late": 1,
        "never": 1,
        "onset_at_step_1": 1,
        "leads": [3],
    }
    text = "\n".join(section(episodes, steps))
    assert CLAIM in text and "lead median 3" in text
