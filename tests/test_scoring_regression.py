"""Regression over the 50 shared BioBlue trials: the figures must not drop below targets."""

import pytest

from detectors.evaluation import evaluate, parse_labels
from detectors.offline import score_offline
from workers.recordings import BUNDLED_DIR as DATA
from workers.recordings import events_from_recording, read_tsv


@pytest.fixture(scope="module")
def report() -> dict:
    labels = parse_labels((DATA / "labels.tsv").read_text(encoding="utf-8"))
    results = []
    for f in sorted(DATA.glob("*.tsv")):
        if f.name == "labels.tsv":
            continue
        rec = read_tsv(f)
        spec, events = events_from_recording(rec)
        results.append(score_offline(spec, events, str(f), rec.benchmark))
    assert len(results) == 50
    return evaluate(results, labels)


def test_flip_precision_recall(report):
    flip = report["overall"]["flip"]
    assert flip["precision"] >= 0.95
    assert flip["recall"] >= 0.95


def test_onset_error_and_lag(report):
    o = report["overall"]
    assert o["onset_error"]["median"] <= 2
    assert o["detection_lag"]["all_within_n"]


def test_self_imitation(report):
    si = report["overall"]["self_imitation"]
    assert si["precision"] >= 0.8
    assert si["recall"] >= 0.8


def test_hard_cases(report):
    dis = {d["file"]: d["what"] for d in report["disagreements"]}
    # alternating 0,10/10,0 (not a flip), period-2 hidden flip, frozen 0,0 (not a flip)
    for name in (
        "balancing-unbounded-objectives-with-hint_gpt-4o-mini_2025_02_12_02_11_45_234379.tsv",
        "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_57_45_693197.tsv",
        "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_54_37_907333.tsv",
    ):
        assert "flip:" not in dis.get(name, "")


def test_hazard_auc_floor(report):
    # Target is 0.8; the current model reaches about 0.74 (see docs/detectors.md). This
    # floor guards against regressions of the forecast until it is improved.
    assert report["overall"]["hazard_auc"] >= 0.7
