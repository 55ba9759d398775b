"""The experiment file (YAML), validated with pydantic so a typo names its field.

Why strict (``extra="forbid"`` everywhere): a misspelt key in a long-running grid would
otherwise be ignored silently and hours of episodes would run with the wrong settings.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.episode import DetectorConfig, VerdictPolicy
from workers.environments.catalog import ENVIRONMENT_NAMES
from workers.mitigations import parse_mitigations
from workers.models.kinds import MODEL_KINDS


class ConfigError(ValueError):
    """The experiment file cannot be used; the message names the file and the field."""


class ModelEntry(BaseModel):
    """One agent of the grid: a scripted kind or a model (``model``/``base_url`` shortcuts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/\-]+$", max_length=100)
    model: str | None = None
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_kinds_need_a_model(self) -> "ModelEntry":
        if self.kind in MODEL_KINDS and not (self.model or self.options.get("model")):
            raise ValueError(f"kind {self.kind!r} needs 'model'")
        if self.kind == "openai-compatible" and not (self.base_url or self.options.get("base_url")):
            raise ValueError("kind 'openai-compatible' needs 'base_url'")
        return self

    @property
    def label(self) -> str:
        """The cell's model name: ``name``, else the model, else the kind."""
        return self.name or self.model or str(self.options.get("model") or self.kind)

    def agent_options(self) -> dict[str, Any]:
        """``options`` with the shortcuts folded in (the shortcuts win)."""
        shortcuts = {
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
        }
        return {**self.options, **{k: v for k, v in shortcuts.items() if v is not None}}


class EnvironmentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in ENVIRONMENT_NAMES:
            raise ValueError(f"unknown environment {name!r}; known: {', '.join(ENVIRONMENT_NAMES)}")
        return name


Range = tuple[float, float]


class SearchSpace(BaseModel):
    """``--search optuna``: the mitigation settings to tune, each a ``[low, high]`` range.

    A setting left out (``null``) is not tuned. ``temperature`` applies only to model
    agents. ``n_consecutive`` is the detector's recovery threshold (sustained steps before a
    flip is declared and recovered); it also moves what counts as a flip, so a search that
    minimises the flip rate would just raise it: it is off unless a range is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reminder_every: Range | None = (2, 30)
    context_steps: Range | None = (2, 40)
    temperature: Range | None = (0.0, 1.5)
    n_consecutive: Range | None = None
    finetune_epochs: Range | None = None  # needs the experiment's ``finetune`` section

    @model_validator(mode="after")
    def _ordered(self) -> "SearchSpace":
        for name in type(self).model_fields:
            bounds = getattr(self, name)
            if bounds is not None and not 0 <= bounds[0] <= bounds[1]:
                raise ValueError(f"{name}: need 0 <= low <= high, got {list(bounds)}")
        return self


class FinetuneSpec(BaseModel):
    """``finetune``: the corrective adapter a search trial trains and serves.

    With ``search.finetune_epochs``, each trial fine-tunes ``base`` on the dataset's
    subset of size ``k`` for the trial's number of epochs (kept in ``out``, default
    ``RESULTS/finetune``, and reused by any trial with the same settings), serves it with
    llama.cpp, and points every ``openai-compatible`` model of the grid at it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1)
    k: int = Field(ge=1)
    base: str = "smollm2"
    lr: float = Field(default=5e-4, gt=0)
    rank: int = Field(default=8, ge=1)
    layers: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=384, ge=16)
    seed: int = 0
    out: str | None = None


class ExperimentConfig(BaseModel):
    """``name, models, environments, mitigations, seeds | trials, steps, concurrency, detector``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=60)
    models: list[ModelEntry] = Field(min_length=1)
    environments: list[EnvironmentEntry] = Field(min_length=1)
    mitigations: list[str] = Field(default_factory=lambda: ["savepoint-recovery"], min_length=1)
    seeds: list[int] | None = None
    trials: int | None = Field(default=None, ge=1, le=100_000)
    steps: int = Field(default=100, ge=1, le=100_000)
    concurrency: int = Field(default=50, ge=1, le=10_000)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    policy: VerdictPolicy | None = Field(
        default=None, description="action per flag; none: the worker default (settings)"
    )
    search: SearchSpace = Field(default_factory=SearchSpace)
    finetune: FinetuneSpec | None = None

    @field_validator("environments", mode="before")
    @classmethod
    def _names_as_entries(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("policy")
    @classmethod
    def _worker_policy(cls, policy: VerdictPolicy | None) -> VerdictPolicy | None:
        return policy.check_worker() if policy is not None else None

    @field_validator("mitigations")
    @classmethod
    def _known_mitigations(cls, names: list[str]) -> list[str]:
        for name in names:
            parse_mitigations(name)  # ValueError names the unknown part
        if len(set(names)) != len(names):
            raise ValueError("a mitigation is listed twice")
        return names

    @model_validator(mode="after")
    def _seeds_and_labels(self) -> "ExperimentConfig":
        if (self.seeds is None) == (self.trials is None):
            raise ValueError("give exactly one of 'seeds' (a list) or 'trials' (a number)")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("'seeds' must be a non-empty list without repeats")
        labels = [m.label for m in self.models]
        doubles = sorted({label for label in labels if labels.count(label) > 1})
        if doubles:
            raise ValueError(
                f"models {doubles} appear twice: give each a distinct 'name' (the cell label)"
            )
        envs = [e.name for e in self.environments]
        if len(set(envs)) != len(envs):
            raise ValueError("an environment is listed twice")
        if self.search.finetune_epochs is not None and self.finetune is None:
            raise ValueError("search.finetune_epochs needs a 'finetune' section (dataset, k)")
        return self

    @property
    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return list(range(1, (self.trials or 0) + 1))


def parse_config(data: Any, source: str = "experiment") -> ExperimentConfig:
    """Validate a loaded YAML document; :class:`ConfigError` names each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must hold a mapping (name, models, ...)")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"  {where}: {message}")
        raise ConfigError(f"{source}: invalid experiment:\n" + "\n".join(problems)) from None


def load_config(path: Path) -> ExperimentConfig:
    """Read and validate ``path``."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))
