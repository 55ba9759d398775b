"""``experiment --search optuna``: Bayesian optimisation of mitigation settings.

Why this shape: a trial is a whole small experiment (the config's models x environments
x seeds under one mitigation built from the trial's settings), so the objective is a
flip rate measured exactly as ``experiment`` measures it. A coarse grid (every corner
of the search space) is enqueued first so TPE starts from a map of the space, not from
random guesses. Everything resumes: the study lives in ``RESULTS/search.db`` (SQLite),
``--n-trials`` is the total wanted, and a trial's episodes sit in a directory named after
its settings, so a trial cut short re-runs only its unfinished episodes.
"""

import asyncio
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from monitor.experiments.config import MODEL_KINDS, ExperimentConfig
from monitor.experiments.layout import Results
from monitor.experiments.runner import run_experiment
from monitor.experiments.stats import total_score
from monitor.runtime import loop_factory
from schemas.settings import Settings

INT_PARAMS = ("reminder_every", "context_steps", "n_consecutive", "finetune_epochs")
_REPLACED = ("reminder-every-", "short-context-")


def space(config: ExperimentConfig) -> dict[str, tuple[float, float]]:
    """The ranges to tune; temperature only when some model is a real model."""
    out = {k: v for k, v in config.search.model_dump().items() if v is not None}
    if not any(m.kind in MODEL_KINDS for m in config.models):
        out.pop("temperature", None)
    return {k: (float(v[0]), float(v[1])) for k, v in out.items()}


def coarse_grid(ranges: dict[str, tuple[float, float]]) -> list[dict[str, float]]:
    """Every corner of the space (low/high of each setting)."""
    names = sorted(ranges)
    corners = itertools.product(*(sorted(set(ranges[n])) for n in names))
    return [
        {n: (int(v) if n in INT_PARAMS else v) for n, v in zip(names, c, strict=True)}
        for c in corners
    ]


def trial_config(config: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """The small experiment one trial runs: the first mitigation plus the trial's settings."""
    base = [p for p in config.mitigations[0].split("+") if not p.startswith(_REPLACED)]
    if "reminder_every" in params:
        base.append(f"reminder-every-{int(params['reminder_every'])}")
    if "context_steps" in params:
        base.append(f"short-context-{int(params['context_steps'])}")
    models = [
        m.model_copy(update={"temperature": params["temperature"]})
        if "temperature" in params and m.kind in MODEL_KINDS
        else m
        for m in config.models
    ]
    detector = config.detector
    if "n_consecutive" in params:
        detector = detector.model_copy(update={"n_consecutive": int(params["n_consecutive"])})
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return config.model_copy(
        update={
            "name": f"{config.name}-{digest}",
            "mitigations": ["+".join(base)],
            "models": models,
            "detector": detector,
        }
    )


class _Objective:
    def __init__(
        self,
        config: ExperimentConfig,
        root: Path,
        ranges: dict[str, tuple[float, float]],
        settings: Settings | None,
        show_progress: bool,
    ) -> None:
        self.config, self.root, self.ranges = config, root, ranges
        self.settings, self.show_progress = settings, show_progress

    def __call__(self, trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        for name, (lo, hi) in self.ranges.items():
            if name in INT_PARAMS:
                params[name] = trial.suggest_int(name, int(lo), int(hi))
            else:
                params[name] = trial.suggest_float(name, lo, hi)
        sub = trial_config(self.config, params)
        out = self.root / "trials" / sub.name
        adapter = None
        if "finetune_epochs" in params:
            from monitor.experiments.search_finetune import trial_adapter

            adapter = trial_adapter(self.config, self.root, int(params["finetune_epochs"]))
            trial.set_user_attr("adapter", str(adapter))
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            run = runner.run(self._run(sub, out, adapter))
        if not run.complete:
            raise RuntimeError(f"trial {trial.number}: {len(run.failed)} episodes failed")
        episodes = Results(out).episode_lines()
        flip_rate = sum(1 for e in episodes if e["flips"] > 0) / len(episodes)
        trial.set_user_attr("mitigation", sub.mitigations[0])
        trial.set_user_attr("results", str(out.relative_to(self.root)))
        trial.set_user_attr("episodes", len(episodes))
        trial.set_user_attr("task_score", sum(map(total_score, episodes)) / len(episodes))
        return flip_rate

    async def _run(self, sub: ExperimentConfig, out: Path, adapter: Path | None) -> Any:
        def go(config: ExperimentConfig) -> Any:
            return run_experiment(
                config,
                out,
                asyncio.Event(),
                settings=self.settings,
                show_progress=self.show_progress,
            )

        if adapter is None:
            return await go(sub)
        from monitor.experiments.search_finetune import served

        async with served(sub, adapter) as tuned:
            return await go(tuned)


def open_study(root: Path, name: str, direction: str) -> optuna.Study:
    """The study in ``root/search.db``; trials a crash left RUNNING are marked FAIL."""
    root.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(root / 'search.db').resolve()}")
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=0),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"study {name!r} in {root} was made to {study.direction.name.lower()}; "
            f"use another results directory for --direction {direction}"
        )
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study


def run_search(
    config: ExperimentConfig,
    root: Path,
    *,
    n_trials: int,
    direction: str = "minimize",
    settings: Settings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the study until it holds ``n_trials`` complete trials; write ``search.json``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranges = space(config)
    if not ranges:
        raise ValueError("search: nothing to tune (every setting of 'search' is null)")
    study = open_study(root, config.name, direction)
    if not study.trials:
        for params in coarse_grid(ranges)[:n_trials]:
            study.enqueue_trial(params)
    objective = _Objective(config, root, ranges, settings, show_progress)
    done = len(study.get_trials(states=(TrialState.COMPLETE,)))
    if done < n_trials:  # a failed trial is recorded as FAIL; rerun to make up for it
        study.optimize(objective, n_trials=n_trials - done, catch=(RuntimeError,))
    report = summarise_study(study, root)
    (root / "search.json").write_text(json.dumps(report, indent=2))
    return report


def summarise_study(study: optuna.Study, root: Path) -> dict[str, Any]:
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    return {
        "study": study.study_name,
        "storage": str(root / "search.db"),
        "direction": study.direction.name.lower(),
        "trials": [
            {"number": t.number, "flip_rate": t.value, "params": t.params, **t.user_attrs}
            for t in complete
        ],
        "best": None
        if best is None
        else {
            "number": best.number,
            "flip_rate": best.value,
            "params": best.params,
            **best.user_attrs,
        },
    }
