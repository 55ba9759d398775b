"""Reading BioBlue TSV recordings into one normalised shape.

The five benchmark formats differ in their columns; the format is detected from the
header row (and, for the two balancing variants, from whether the prompts show the
imbalance reward). Values are parsed, never interpreted: environments and detectors do
that. Reward keys are the canonical signal ids also used by the environments.
"""

import csv
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

csv.field_size_limit(10_000_000)

BUNDLED_DIR = Path(__file__).parent / "data" / "bioblue"


def bundled_recordings() -> list[Path]:
    """The 50 recorded GPT-4o-mini trials shipped with the package (MPL-2.0, see NOTICE.md)."""
    return sorted(BUNDLED_DIR.glob("*_gpt-4o-mini_*.tsv"))


class RecordingError(ValueError):
    """A file that is not a readable BioBlue recording; the message says where and why."""


@dataclass(frozen=True, slots=True)
class RecordedStep:
    step: int
    prompt: str  # observation text shown to the model, real newlines
    response: str | None  # verbatim answer where recorded
    action: dict[str, int]
    before: dict[str, float]
    after: dict[str, float]
    noise: dict[str, float]  # the environment's random change per objective (empty if none)
    rewards: dict[str, float]  # canonical signal id -> reward of this step
    metrics: dict[str, float] = field(default_factory=dict)  # imbalance, instability


@dataclass(frozen=True, slots=True)
class Recording:
    source: str
    benchmark: str  # e.g. "balancing-unbounded-objectives-with-hint"
    environment: str  # environment registry name
    env_options: dict[str, object]
    model: str
    trial: int
    steps: list[RecordedStep]

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.steps[0].action) if self.steps else ()

    @property
    def seed(self) -> int:
        """The seed that reproduces the recorded noise without a trace.

        The ten recorded homeostasis trials all share the noise of ``Random(0)`` (a quirk of
        how those runs were seeded); every other benchmark used seed = trial number.
        """
        return 0 if self.environment == "homeostasis" else self.trial

    def noise_trace(self) -> list[dict[str, float]]:
        return [s.noise for s in self.steps]


def _num(row: Mapping[str, str], column: str, where: str) -> float:
    raw = row.get(column)
    if raw is None or raw.strip() == "":
        raise RecordingError(f"{where}: empty or missing column {column!r}")
    try:
        value = float(raw)
    except ValueError:
        raise RecordingError(f"{where}: column {column!r} is not a number: {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise RecordingError(f"{where}: column {column!r} is not finite")
    return value


def _int(row: Mapping[str, str], column: str, where: str) -> int:
    value = _num(row, column, where)
    if value != int(value):
        raise RecordingError(f"{where}: column {column!r} is not an integer: {value}")
    return int(value)


def _homeostasis(row: Mapping[str, str], w: str) -> RecordedStep:
    return RecordedStep(
        step=_int(row, "Step number", w),
        prompt=row["Prompt message"].replace("\\n", "\n"),
        response=None,
        action={"level": _int(row, "Amount food consumed", w)},
        before={"level": _num(row, "Previous homeostatic actual", w)},
        after={"level": _num(row, "New homeostatic actual", w)},
        noise={"level": _num(row, "Random homeostatic level change", w)},
        rewards={
            "consumption": _num(row, "Consumption reward", w),
            "undersatiation": _num(row, "Undersatiation reward", w),
            "oversatiation": _num(row, "Oversatiation reward", w),
        },
    )


def _mo_homeostasis(row: Mapping[str, str], w: str) -> RecordedStep:
    ab = ("A", "B")
    return RecordedStep(
        step=_int(row, "Step number", w),
        prompt=row["Prompt message"].replace("\\n", "\n"),
        response=row.get("Verbatim LLM response"),
        action={o: _int(row, f"Amount food consumed for objective {o}", w) for o in ab},
        before={o: _num(row, f"Previous homeostatic actual of objective {o}", w) for o in ab},
        after={o: _num(row, f"New homeostatic actual of objective {o}", w) for o in ab},
        noise={o: _num(row, f"Random homeostatic level change of objective {o}", w) for o in ab},
        rewards={
            f"{signal}_{o}": _num(row, f"{signal.capitalize()} reward {o}", w)
            for o in ab
            for signal in ("consumption", "undersatiation", "oversatiation")
        },
    )


def _sustainability(row: Mapping[str, str], w: str) -> RecordedStep:
    return RecordedStep(
        step=_int(row, "Step number", w),
        prompt=row["Prompt message"].replace("\\n", "\n"),
        response=None,
        action={"stock": _int(row, "Amount food harvested", w)},
        before={"stock": _num(row, "Previous amount of food available", w)},
        after={"stock": _num(row, "New amount of food available", w)},
        noise={},
        rewards={
            "consumption": _num(row, "Consumption reward", w),
            "instability": _num(row, "Instability reward", w),
        },
        metrics={"instability": _num(row, "Instability metric", w)},
    )


def _balancing(row: Mapping[str, str], w: str) -> RecordedStep:
    ab = ("A", "B")
    return RecordedStep(
        step=_int(row, "Step number", w),
        prompt=row["Prompt message"].replace("\\n", "\n"),
        response=row.get("Verbatim LLM response"),
        action={o: _int(row, f"Amount resources harvested for objective {o}", w) for o in ab},
        before={o: _num(row, f"Previous total of objective {o}", w) for o in ab},
        after={o: _num(row, f"New total of objective {o}", w) for o in ab},
        noise={},
        rewards={
            "harvesting_A": _num(row, "Harvesting reward A", w),
            "harvesting_B": _num(row, "Harvesting reward B", w),
            "imbalance": _num(row, "Imbalance reward", w),
        },
        metrics={"imbalance": _num(row, "Imbalance metric", w)},
    )


# (a column only this format has, environment name, row parser)
_FORMATS = (
    ("Amount food harvested", "sustainability", _sustainability),
    ("Amount food consumed for objective A", "multiobjective-homeostasis", _mo_homeostasis),
    ("Amount food consumed", "homeostasis", _homeostasis),
    ("Amount resources harvested for objective A", "balancing-unbounded-objectives", _balancing),
)


def is_bioblue_tsv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return False
    return "Prompt message" in header and any(col in header for col, _, _ in _FORMATS)


def read_tsv(path: str | Path) -> Recording:
    """Read one BioBlue recording; :class:`RecordingError` names the row and column."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read: {exc}") from None
    if not rows:
        raise RecordingError(f"{path}: no rows")
    header = rows[0].keys()
    found = next((f for f in _FORMATS if f[0] in header), None)
    if found is None:
        raise RecordingError(f"{path}: header matches no BioBlue benchmark format")
    _, environment, parse = found
    if "Prompt message" not in header:
        raise RecordingError(f"{path}: missing column 'Prompt message'")
    steps = [parse(row, f"{path.name} row {i + 2}") for i, row in enumerate(rows)]
    for expected, s in enumerate(steps, start=1):
        if s.step != expected:
            raise RecordingError(f"{path.name}: step {s.step} where {expected} was expected")
    benchmark, options = environment, {}
    if environment == "balancing-unbounded-objectives":
        hint = any("\nImbalance:" in s.prompt for s in steps)
        benchmark = f"{environment}-{'with' if hint else 'no'}-hint"
        options = {"hint": hint}
    first = rows[0]
    return Recording(
        source=str(path),
        benchmark=benchmark,
        environment=environment,
        env_options=options,
        model=first.get("Model name") or "unknown",
        trial=_int(first, "Trial number", f"{path.name} row 2"),
        steps=steps,
    )


def events_from_recording(recording: Recording, episode_id: str | None = None):
    """The episode spec and step events of a recording, as a worker would publish them."""
    from schemas.episode import AgentSpec, EpisodeSpec
    from schemas.events import StepEvent
    from workers.environments.catalog import OBJECTIVES

    episode_id = episode_id or f"replay:{Path(recording.source).stem}"[:128]
    spec = EpisodeSpec(
        episode_id=episode_id,
        environment=recording.environment,
        env_options=recording.env_options,
        objectives=OBJECTIVES[recording.environment],
        seed=recording.seed,
        steps=max(len(recording.steps), 1),
        agent=AgentSpec(kind="replay", options={"source": recording.source}),
        labels={"model": recording.model, "benchmark": recording.benchmark},
    )
    events = [
        StepEvent(
            episode_id=episode_id,
            step=s.step,
            observation=s.before,
            action={k: float(v) for k, v in s.action.items()},
            after=s.after,
            noise=s.noise or None,
            rewards=s.rewards,
            text=s.response,
        )
        for s in recording.steps
    ]
    return spec, events


def read_tsv_shared(path: str | Path) -> Recording:
    """:func:`read_tsv`, parsed once per file version and shared (recordings are frozen).

    Why: a replay agent is built per episode, and many episodes replay the same file;
    parsing a 100-step TSV cost more CPU than playing the episode.
    """
    file = Path(path)
    try:
        st = file.stat()
    except OSError:
        return read_tsv(file)  # which says what is wrong
    return _read_versioned(str(file.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=128)
def _read_versioned(path: str, mtime_ns: int, size: int) -> Recording:
    return read_tsv(path)
