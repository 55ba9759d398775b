"""Prometheus metrics of workers and detectors, created on an injected registry.

Names follow ``runaway_<what>_<unit>``; labels are bounded sets (environment, agent kind,
mitigation, flag, outcome), never episode ids.
"""

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.episode import ACTIONS, FLAGS

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RI_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, memoised on the metric.

    Why: ``labels()`` validates and takes a lock on every call (~10 us); the request and
    step paths call it several times each. Label values are bounded sets, so is the memo.
    """
    memo: dict[tuple[str, ...], Any] | None = getattr(metric, "_runaway_children", None)
    if memo is None:
        memo = {}
        metric._runaway_children = memo
    found = memo.get(values)
    if found is None:
        found = memo[values] = metric.labels(*values)
    return found


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        env_labels = ("environment", "agent", "mitigation")
        self.steps = Counter("runaway_steps_total", "Agent steps played", env_labels, registry=r)
        self.invalid_actions = Counter(
            "runaway_invalid_actions_total", "Answers rejected and re-asked", env_labels, registry=r
        )
        self.recoveries = Counter(
            "runaway_recoveries_total", "Recovery commands applied", env_labels, registry=r
        )
        self.reminders = Counter(
            "runaway_reminders_total",
            "Remind commands applied (a reminder added, the context kept)",
            env_labels,
            registry=r,
        )
        self.episodes = Counter(
            "runaway_episodes_total", "Episodes ended", ("environment", "outcome"), registry=r
        )
        self.active = Gauge("runaway_active_episodes", "Episodes running now", registry=r)
        self.verdict_lag = Histogram(
            "runaway_detection_lag_seconds",
            "Time from a step's publication to its verdict reaching the worker",
            buckets=LAG_BUCKETS,
            registry=r,
        )


@dataclass
class DetectorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.steps = Counter(
            "runaway_detector_steps_total", "Steps scored", ("environment",), registry=r
        )
        self.flips = Counter(
            "runaway_flips_total", "Flags raised", ("environment", "flag"), registry=r
        )
        self.verdicts = Counter(
            "runaway_detector_verdicts_total",
            "Verdicts a flag caused, by the action applied (continue: a fallback or policy)",
            ("verdict", "cause"),
            registry=r,
        )
        for verdict in ACTIONS:
            for cause in FLAGS:
                self.verdicts.labels(verdict, cause)
        self.deadletters = Counter(
            "runaway_deadletter_total", "Stream entries dead-lettered", ("reason",), registry=r
        )
        self.duplicates = Counter(
            "runaway_duplicate_steps_total", "Steps at or below the last one seen", registry=r
        )
        self.reclaimed = Counter(
            "runaway_reclaimed_entries_total", "Pending entries claimed from others", registry=r
        )
        self.checkpoint_errors = Counter(
            "runaway_detector_checkpoint_errors_total",
            "Episode checkpoints that could not be read or written (scoring restarted)",
            registry=r,
        )
        self.batch = Histogram(
            "runaway_detector_batch_size",
            "Entries per read",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.runaway_index = Histogram(
            "runaway_runaway_index", "Runaway Index per scored step", buckets=RI_BUCKETS, registry=r
        )
        self.processing_lag = Histogram(
            "runaway_detector_lag_seconds",
            "Time from a step's publication to its verdict being written",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.shards = Gauge("runaway_detector_shards", "Shards this detector owns", registry=r)
        self.up = Gauge("runaway_detector_up", "1 while the detector loop runs", registry=r)
