"""Prometheus metrics of the sidecar service, on an injected registry.

Label values that come from users (model, mitigation) pass through :class:`LabelCap`, so
a client sending a new model name per request cannot blow up the series count: after
``limit`` distinct values the rest are reported as ``other``. Episode ids never become
labels. Label sets known up front are initialised so that rates start at zero.
"""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.episode import ACTIONS, FLAGS
from schemas.metrics import LAG_BUCKETS
from workers.environments.catalog import ENVIRONMENT_NAMES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class LabelCap:
    """Keeps at most ``limit`` distinct values of one label; later ones become ``other``."""

    def __init__(self, limit: int, known: tuple[str, ...] = ()) -> None:
        self.limit = limit
        self.seen: set[str] = set(known)

    def __call__(self, value: str | None) -> str:
        value = (value or "unknown")[:40]
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return "other"


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.environment = LabelCap(64, (*ENVIRONMENT_NAMES, "custom", "unknown"))
        self.model = LabelCap(32)
        self.mitigation = LabelCap(16)
        ep = ("environment", "model", "mitigation")
        self.http_requests = Counter(
            "runaway_http_requests_total",
            "HTTP requests served",
            ("method", "route", "status"),
            registry=r,
        )
        self.http_duration = Histogram(
            "runaway_http_request_duration_seconds",
            "HTTP request handling time",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.registered = Counter(
            "runaway_sidecar_episodes_registered_total",
            "Episodes registered over the API",
            ("environment",),
            registry=r,
        )
        self.steps = Counter(
            "runaway_sidecar_steps_total", "Steps accepted over the API", ep, registry=r
        )
        self.verdicts = Counter(
            "runaway_sidecar_verdicts_total",
            "Verdicts returned to sidecar callers",
            ("verdict", "source"),
            registry=r,
        )
        self.fail_mode = Counter(
            "runaway_sidecar_fail_mode_verdicts_total",
            "Verdicts given by the fail mode because the detectors did not answer in time",
            ("mode",),
            registry=r,
        )
        self.verdict_latency = Histogram(
            "runaway_verdict_latency_seconds",
            "Time from receiving a step over HTTP to having its verdict (fail mode included)",
            ("source",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.feed_steps = Counter(
            "runaway_episode_steps_total",
            "Steps seen on the live feed (workers and sidecar)",
            ep,
            registry=r,
        )
        self.feed_flips = Counter(
            "runaway_episode_flips_total", "Flips seen on the live feed", (*ep, "flag"), registry=r
        )
        self.feed_recoveries = Counter(
            "runaway_episode_recoveries_total",
            "Recovery commands seen on the live feed",
            ep,
            registry=r,
        )
        self.cause = LabelCap(16, (*FLAGS, "none"))
        self.action = LabelCap(16, ACTIONS)
        self.feed_verdicts = Counter(
            "runaway_episode_verdicts_total",
            "Verdicts seen on the live feed, by action and the flag that caused it",
            ("action", "cause"),
            registry=r,
        )
        self.fail_mode_setting = Gauge(
            "runaway_sidecar_fail_mode",
            "1 for the fail mode this sidecar applies when an episode names none",
            ("mode",),
            registry=r,
        )
        self.detection_lag = Histogram(
            "runaway_verdict_lag_seconds",
            "Time from a step's publication to its verdict reaching this monitor",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.followed = Gauge(
            "runaway_monitor_followed_episodes",
            "Episodes whose verdicts this monitor follows",
            registry=r,
        )
        self.active = Gauge(
            "runaway_monitor_active_episodes",
            "Episodes started and not finished, seen live",
            registry=r,
        )
        self.sse_clients = Gauge("runaway_sse_clients", "Open /v1/events streams", registry=r)
        self.group_lag = Gauge(
            "runaway_consumer_group_lag",
            "Entries not yet read by the consumer group",
            ("group", "shard"),
            registry=r,
        )
        self.group_pending = Gauge(
            "runaway_consumer_group_pending",
            "Entries read but not acked by the consumer group",
            ("group", "shard"),
            registry=r,
        )
        self.detectors_live = Gauge(
            "runaway_detectors_live", "Detectors with a fresh heartbeat", registry=r
        )
        self.redis_up = Gauge(
            "runaway_redis_up", "1 when Redis answered the last probe", registry=r
        )
        self.task_restarts = Counter(
            "runaway_sidecar_task_restarts_total",
            "In-process background tasks restarted after they failed",
            ("task",),
            registry=r,
        )
        self.task_restarts.labels("detector")
        for v in ACTIONS:
            for s in ("detector", "fail_mode"):
                self.verdicts.labels(v, s)
        for m in ("closed", "open"):
            self.fail_mode.labels(m)
            self.fail_mode_setting.labels(m)
        self.feed_verdicts.labels("continue", "none")
        for a in ACTIONS[1:]:
            for f in FLAGS:
                self.feed_verdicts.labels(a, f)
        for s in ("detector", "fail_mode"):
            self.verdict_latency.labels(s)

    def episode_labels(self, environment: str, model: str, mitigation: str) -> tuple[str, ...]:
        return (self.environment(environment), self.model(model), self.mitigation(mitigation))
