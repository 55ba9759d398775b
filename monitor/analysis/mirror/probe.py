"""``mirror probe``: per-layer linear probes on stored hidden states.

A standardised logistic regression per layer and target, scored by out-of-fold
predictions from cross-validation grouped by trajectory (no trial is in both a training
and a test fold), or trained on one set and scored on another (``--train``/``--test``:
cross-model). AUCs carry a bootstrap interval over trajectories (the unit that was
sampled, not steps, which are strongly correlated within a trial). The behavioural
hazard of the detectors is scored on the very same steps, for comparison.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detectors.evaluation import Label
from monitor.analysis.mirror.store import MirrorStore, Record
from monitor.analysis.mirror.targets import state_target, within_target

Hazard = Callable[[Record], dict[int, float]]


@dataclass(slots=True)
class Rows:
    """The probe's data for one layer: features, both targets, groups, the hazard."""

    x: np.ndarray
    state: np.ndarray
    within: np.ndarray  # -1 where not asked
    groups: np.ndarray
    hazard: np.ndarray


def gather(
    store: MirrorStore,
    records: Sequence[Record],
    labels: dict[str, Label],
    layer: int,
    hazard: Hazard,
) -> Rows:
    xs, state, within, groups, hz = [], [], [], [], []
    for g, record in enumerate(r for r in records if r.trajectory in labels):
        label = labels[record.trajectory]
        column = record.layers.index(layer)
        hidden = store.hidden(record)[:, column, :].astype(np.float32)
        per_step = hazard(record)
        for row, step in enumerate(record.steps):
            xs.append(hidden[row])
            state.append(state_target(label, step))
            w = within_target(label, step)
            within.append(-1 if w is None else w)
            groups.append(g)
            hz.append(per_step.get(step, 0.0))
    if not xs:
        raise ValueError("no stored trajectory has a label: check --labels against the files")
    return Rows(np.stack(xs), np.array(state), np.array(within), np.array(groups), np.array(hz))


def _model():  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> np.ndarray:
    """Predicted probabilities of each row by a model that never saw its trajectory."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("grouped cross-validation needs at least two trajectories")
    scores = np.full(len(y), np.nan)
    for train, test in GroupKFold(n_splits=min(folds, n_groups)).split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            scores[test] = float(np.mean(y[train]))
            continue
        model = _model().fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return scores


def train_test(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    if len(np.unique(y_train)) < 2:
        raise ValueError("the training set has one class only")
    return _model().fit(x_train, y_train).predict_proba(x_test)[:, 1]


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


def bootstrap_auc(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, resamples: int = 200, seed: int = 0
) -> tuple[float | None, float | None]:
    """A 95% percentile interval, resampling whole trajectories."""
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    rows = {g: np.flatnonzero(groups == g) for g in unique}
    values = []
    for _ in range(resamples):
        picked = np.concatenate([rows[g] for g in rng.choice(unique, size=len(unique))])
        value = auc(y[picked], score[picked])
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _scored(y: np.ndarray, score: np.ndarray, groups: np.ndarray) -> dict[str, object]:
    value = auc(y, score)
    low, high = bootstrap_auc(y, score, groups) if value is not None else (None, None)
    return {
        "auc": _round(value),
        "ci": [_round(low), _round(high)],
        "n": len(y),
        "positives": int(y.sum()),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def probe_layer(train: Rows, test: Rows | None = None) -> dict[str, dict[str, object]]:
    """AUCs of both targets at one layer (out-of-fold, or trained on ``train``)."""
    out = {}
    for name in ("state", "within"):
        y_train = getattr(train, name)
        keep_train = y_train >= 0
        if test is None:
            rows = train
            keep = keep_train
            score = out_of_fold(train.x[keep], y_train[keep], train.groups[keep])
        else:
            rows = test
            keep = getattr(test, name) >= 0
            score = train_test(train.x[keep_train], y_train[keep_train], test.x[keep])
        out[name] = _scored(getattr(rows, name)[keep], score, rows.groups[keep])
    return out


def hazard_within(rows: Rows) -> dict[str, object]:
    keep = rows.within >= 0
    return _scored(rows.within[keep], rows.hazard[keep], rows.groups[keep])
