"""Compare detector results with human labels (``labels.tsv``): pure, no I/O but parsing.

Definitions (also in docs/detectors.md):

* Flip precision/recall/F1 per trajectory: a trajectory is a true positive when it is
  labelled ``runaway=1`` and the detector raised the runaway flag.
* Onset error: ``|detected onset - labelled onset_step|`` over true positives; median and
  90th percentile (nearest-rank). Lag: ``detected_step - labelled onset``; every true
  positive should have lag ``<= N``.
* Self-imitation precision/recall per trajectory against the ``oscillation`` column.
* Hazard ROC AUC: every step ``t`` *before* the labelled onset of a flipped trajectory, and
  every step of a trajectory without a flip, is one sample; it is positive when a labelled
  onset lies within the next 10 steps (``t < onset <= t + 10``). Steps at or after the onset
  are excluded: the hazard is a forecast. AUC is the Mann-Whitney statistic (ties count 1/2).
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
            oscillation_onset=(
                int(row["oscillation_onset"]) if row["oscillation_onset"].strip() else None
            ),
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


def _group(pairs: list[tuple[TrajectoryResult, Label]], n_consecutive: int) -> dict:
    tp = fp = fn = tn = 0
    stp = sfp = sfn = 0
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
        if res.self_imitation and lab.oscillation:
            stp += 1
        elif res.self_imitation:
            sfp += 1
        elif lab.oscillation:
            sfn += 1
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
        "self_imitation": {
            "tp": stp,
            "fp": sfp,
            "fn": sfn,
            "precision": _ratio(stp, stp + sfp),
            "recall": _ratio(stp, stp + sfn),
        },
        "hazard_auc": roc_auc(pos, neg),
        "hazard_samples": {"positive": len(pos), "negative": len(neg)},
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
    return "; ".join(parts) or None


def evaluate(
    results: Iterable[TrajectoryResult], labels: dict[str, Label], n_consecutive: int = 5
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
        "overall": _group(pairs, n_consecutive),
        "per_benchmark": {k: _group(v, n_consecutive) for k, v in sorted(per.items())},
        "disagreements": dis,
        "unlabelled": unlabelled,
    }
