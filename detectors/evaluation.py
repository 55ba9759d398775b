"""Compare detector results with human labels (``labels.tsv``): pure, no I/O but parsing.

Definitions (also in docs/detectors.md):

* Flip precision/recall/F1 per trajectory: a trajectory is a true positive when it is
  labelled ``runaway=1`` and the detector raised the runaway flag.
* Onset error: ``|detected onset - labelled onset_step|`` over true positives; median and
  90th percentile (nearest-rank). Lag: ``detected_step - labelled onset``; every true
  positive should have lag ``<= N``.
* Self-imitation precision/recall per trajectory against the ``oscillation`` column;
  over-exploitation precision/recall and onset error against ``over_exploitation`` and
  ``over_exploitation_onset`` (columns that older label files lack count as 0).
* Hazard ROC AUC: every step ``t`` *before* the labelled onset of a flipped trajectory, and
  every step of a trajectory without a flip, is one sample; it is positive when a labelled
  onset lies within the next 10 steps (``t < onset <= t + 10``). Steps at or after the onset
  are excluded: the hazard is a forecast. AUC is the Mann-Whitney statistic (ties count 1/2).
* Hazard calibration: the same samples in ten equal-width hazard bins; per bin the count,
  the mean hazard and the observed share of positives (a reliability table), and the Brier
  score. A calibrated hazard has mean hazard close to the observed share in every bin.
* Lead time: per labelled flip, ``onset - t`` where ``t`` is the first step at which the
  hazard reached the alert level (``DetectorConfig.hazard_alert``) at or before the onset
  (positive: warned that many steps ahead; 0: at the onset); flips whose hazard crossed
  only after the onset, or never, and flips labelled from step 1 (nothing before them to
  forecast) are counted apart. False alarms: unflipped trajectories
  whose hazard ever reached the alert level.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detectors.offline import TrajectoryResult

HAZARD_HORIZON = 10


@dataclass(frozen=True, slots=True)
class Label:
    file: str
    benchmark: str
    runaway: bool
    onset_step: int | None
    kind: str
    oscillation: bool
    oscillation_onset: int | None
    over_exploitation: bool = False
    over_exploitation_onset: int | None = None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip() else None


def parse_labels(text: str) -> dict[str, Label]:
    """``labels.tsv`` content -> labels keyed by the TSV file name."""
    out: dict[str, Label] = {}
    for row in csv.DictReader(io.StringIO(text), delimiter="\t"):
        out[row["file"]] = Label(
            file=row["file"],
            benchmark=row["benchmark"],
            runaway=row["runaway"].strip() == "1",
            onset_step=int(row["onset_step"]) if row["onset_step"].strip() else None,
            kind=row.get("kind", ""),
            oscillation=row["oscillation"].strip() == "1",
            oscillation_onset=_int_or_none(row["oscillation_onset"]),
            over_exploitation=(row.get("over_exploitation") or "").strip() == "1",
            over_exploitation_onset=_int_or_none(row.get("over_exploitation_onset")),
        )
    return out


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: errors are whole steps)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-int(q * len(v) * 100) // 100) - 1))
    return float(v[k])


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return float(v[mid]) if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties 1/2)."""
    if not pos or not neg:
        return None
    tagged = sorted([(x, 1) for x in pos] + [(x, 0) for x in neg])
    rank_sum = 0.0
    i = 0
    n = len(tagged)
    while i < n:
        j = i
        while j + 1 < n and tagged[j + 1][0] == tagged[i][0]:
            j += 1
        avg_rank = (i + j) / 2 + 1
        rank_sum += avg_rank * sum(1 for k in range(i, j + 1) if tagged[k][1] == 1)
        i = j + 1
    npos = len(pos)
    return (rank_sum - npos * (npos + 1) / 2) / (npos * len(neg))


def hazard_samples(result: TrajectoryResult, label: Label) -> tuple[list[float], list[float]]:
    """(positive hazards, negative hazards) of one trajectory, as defined above."""
    pos: list[float] = []
    neg: list[float] = []
    onset = label.onset_step if label.runaway else None
    for sc in result.scores:
        if onset is not None and sc.step >= onset:
            break
        if onset is not None and onset <= sc.step + HAZARD_HORIZON:
            pos.append(sc.hazard)
        else:
            neg.append(sc.hazard)
    return pos, neg


CALIBRATION_BINS = 10


def calibration(pos: Sequence[float], neg: Sequence[float]) -> dict:
    """Reliability table (ten equal-width bins) and Brier score of the hazard samples."""
    bins = [[0, 0.0, 0] for _ in range(CALIBRATION_BINS)]  # count, hazard sum, positives
    for label, values in ((1, pos), (0, neg)):
        for h in values:
            b = bins[min(CALIBRATION_BINS - 1, int(h * CALIBRATION_BINS))]
            b[0] += 1
            b[1] += h
            b[2] += label
    table = [
        {
            "bin": f"{k / CALIBRATION_BINS:.1f}-{(k + 1) / CALIBRATION_BINS:.1f}",
            "n": n,
            "mean_hazard": s / n,
            "observed": p / n,
        }
        for k, (n, s, p) in enumerate(bins)
        if n
    ]
    total = len(pos) + len(neg)
    brier = (sum((1 - h) ** 2 for h in pos) + sum(h * h for h in neg)) / total if total else None
    base = len(pos) / total if total else None
    return {"table": table, "brier": brier, "base_rate": base}


def lead_time(result: TrajectoryResult, label: Label, alert: float) -> int | str | None:
    """Steps from the hazard first reaching ``alert`` to the labelled onset (see above);
    ``"late"`` when it reached it only after the onset, None when never."""
    first = next((sc.step for sc in result.scores if sc.hazard >= alert), None)
    if first is None or label.onset_step is None:
        return None
    return label.onset_step - first if first <= label.onset_step else "late"


def _lead_times(pairs: list[tuple[TrajectoryResult, Label]], alert: float) -> dict:
    leads: list[int] = []
    late = never = alarms = calm = at_start = 0
    for res, lab in pairs:
        if not lab.runaway:
            crossed = any(sc.hazard >= alert for sc in res.scores)
            alarms += crossed
            calm += not crossed
            continue
        lt = lead_time(res, lab, alert)
        if lab.onset_step is not None and lab.onset_step <= 1:
            at_start += 1  # no step before the onset: nothing to forecast
        elif lt is None:
            never += 1
        elif lt == "late":
            late += 1
        else:
            leads.append(int(lt))
    return {
        "alert": alert,
        "flips": len(leads) + late + never + at_start,
        "onset_at_step_1": at_start,
        "warned": len(leads),
        "median": _median(leads),
        "p10": _percentile(leads, 0.1),
        "p90": _percentile(leads, 0.9),
        "max": max(leads) if leads else None,
        "distribution": {str(k): leads.count(k) for k in sorted(set(leads))},
        "late": late,
        "never": never,
        "false_alarm_trajectories": alarms,
        "unflipped_trajectories": alarms + calm,
    }


def _flag_counts(pairs: list[tuple[TrajectoryResult, Label]], flag: str) -> dict:
    """TP/FP/FN, precision, recall and onset error of one per-trajectory flag."""
    detected, onset, labelled, lab_onset = _FLAG_FIELDS[flag]
    tp = fp = fn = 0
    errors: list[float] = []
    for res, lab in pairs:
        got, want = getattr(res, detected), getattr(lab, labelled)
        if got and want:
            tp += 1
            a, b = getattr(res, onset), getattr(lab, lab_onset)
            if a is not None and b is not None:
                errors.append(abs(a - b))
        elif got:
            fp += 1
        elif want:
            fn += 1
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "onset_error_median": _median(errors),
    }


_FLAG_FIELDS = {
    "self_imitation": (
        "self_imitation",
        "self_imitation_step",
        "oscillation",
        "oscillation_onset",
    ),
    "over_exploitation": (
        "over_exploitation",
        "over_exploitation_step",
        "over_exploitation",
        "over_exploitation_onset",
    ),
}


def _group(
    pairs: list[tuple[TrajectoryResult, Label]], n_consecutive: int, alert: float = 0.5
) -> dict:
    tp = fp = fn = tn = 0
    errors: list[float] = []
    lags: list[int] = []
    pos: list[float] = []
    neg: list[float] = []
    for res, lab in pairs:
        if res.flipped and lab.runaway:
            tp += 1
            if lab.onset_step is not None and res.flip_step is not None:
                errors.append(abs(res.flip_step - lab.onset_step))
                lags.append((res.detected_step or 0) - lab.onset_step)
        elif res.flipped:
            fp += 1
        elif lab.runaway:
            fn += 1
        else:
            tn += 1
        p, q = hazard_samples(res, lab)
        pos += p
        neg += q
    prec = _ratio(tp, tp + fp)
    rec = _ratio(tp, tp + fn)
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if tp + fp + fn else None)
    return {
        "trajectories": len(pairs),
        "flip": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": prec,
            "recall": rec,
            "f1": f1,
        },
        "onset_error": {
            "median": _median(errors),
            "p90": _percentile(errors, 0.9),
            "max": max(errors) if errors else None,
        },
        "detection_lag": {
            "max": max(lags) if lags else None,
            "all_within_n": all(lag <= n_consecutive for lag in lags),
        },
        "self_imitation": _flag_counts(pairs, "self_imitation"),
        "over_exploitation": _flag_counts(pairs, "over_exploitation"),
        "hazard_auc": roc_auc(pos, neg),
        "hazard_samples": {"positive": len(pos), "negative": len(neg)},
        "hazard_calibration": calibration(pos, neg),
        "lead_time": _lead_times(pairs, alert),
    }


def disagreement(res: TrajectoryResult, lab: Label) -> str | None:
    """One line describing how detector and label differ, or None when they agree."""
    parts = []
    if res.flipped != lab.runaway:
        parts.append(
            f"flip: detector {'yes@' + str(res.flip_step) if res.flipped else 'no'}, "
            f"label {'yes@' + str(lab.onset_step) if lab.runaway else 'no'}"
        )
    elif res.flipped and lab.onset_step is not None and res.flip_step != lab.onset_step:
        parts.append(f"flip onset {res.flip_step} vs label {lab.onset_step}")
    if res.self_imitation != lab.oscillation:
        parts.append(
            f"self-imitation: detector "
            f"{'yes@' + str(res.self_imitation_step) if res.self_imitation else 'no'}, "
            f"label {'yes@' + str(lab.oscillation_onset) if lab.oscillation else 'no'}"
        )
    if res.over_exploitation != lab.over_exploitation:
        parts.append(
            f"over-exploitation: detector "
            f"{'yes@' + str(res.over_exploitation_step) if res.over_exploitation else 'no'}, "
            f"label {'yes@' + str(lab.over_exploitation_onset) if lab.over_exploitation else 'no'}"
        )
    return "; ".join(parts) or None


def evaluate(
    results: Iterable[TrajectoryResult],
    labels: dict[str, Label],
    n_consecutive: int = 5,
    alert: float = 0.5,
) -> dict:
    """Overall and per-benchmark figures, the disagreements, and unlabelled sources."""
    pairs: list[tuple[TrajectoryResult, Label]] = []
    unlabelled: list[str] = []
    for res in results:
        lab = labels.get(Path(res.source).name)
        if lab is None:
            unlabelled.append(res.source)
        else:
            pairs.append((res, lab))
    per: dict[str, list[tuple[TrajectoryResult, Label]]] = {}
    for res, lab in pairs:
        per.setdefault(lab.benchmark, []).append((res, lab))
    dis = []
    for res, lab in pairs:
        d = disagreement(res, lab)
        if d:
            dis.append({"file": lab.file, "benchmark": lab.benchmark, "what": d})
    return {
        "overall": _group(pairs, n_consecutive, alert),
        "per_benchmark": {k: _group(v, n_consecutive, alert) for k, v in sorted(per.items())},
        "disagreements": dis,
        "unlabelled": unlabelled,
    }
