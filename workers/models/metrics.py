"""Prometheus metrics of model calls, on an injected registry.

Why injected: a worker exports them on its own /metrics with its own registry, and tests
get a fresh one each; the default global registry would make both leak. Labels are only
provider, outcome, direction and reason (bounded sets); never episode ids or models'
free text. Label sets are initialised when a provider is first used so a dashboard shows
zeros instead of missing series.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas.metrics import child

OUTCOMES = (
    "ok",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "conflict",
    "client_error",
    "malformed",
    "cancelled",
    "error",
)
RETRY_REASONS = ("rate_limited", "server_error", "timeout", "connection_error", "conflict")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class ModelMetrics:
    """The ``runaway_model_*`` metrics. One instance per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "runaway_model_requests_total",
            "HTTP attempts to model providers, by outcome",
            ["provider", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "runaway_model_tokens_total",
            "Tokens sent (input) and received (output)",
            ["provider", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "runaway_model_cost_usd_total",
            "Estimated cost in US dollars (0 for models without a price)",
            ["provider"],
            registry=registry,
        )
        self.latency = Histogram(
            "runaway_model_latency_seconds",
            "Duration of one HTTP attempt",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "runaway_model_retries_total",
            "Attempts retried, by the reason the previous one failed",
            ["provider", "reason"],
            registry=registry,
        )
        self._known: set[str] = set()

    def init_provider(self, provider: str) -> None:
        """Create every label set of ``provider`` at 0."""
        if provider in self._known:
            return
        self._known.add(provider)
        for outcome in OUTCOMES:
            self.requests.labels(provider, outcome)
        for direction in ("input", "output"):
            self.tokens.labels(provider, direction)
        self.cost.labels(provider)
        self.latency.labels(provider)
        for reason in RETRY_REASONS:
            self.retries.labels(provider, reason)

    def observer(self, provider: str) -> "ProviderObserver":
        """The retry policy's observer for one provider."""
        self.init_provider(provider)
        return ProviderObserver(self, provider)

    def record_usage(
        self, provider: str, input_tokens: int, output_tokens: int, cost: float
    ) -> None:
        child(self.tokens, provider, "input").inc(input_tokens)
        child(self.tokens, provider, "output").inc(output_tokens)
        child(self.cost, provider).inc(cost)


class ProviderObserver:
    """Adapts the retry policy's events to the metrics of one provider."""

    def __init__(self, metrics: ModelMetrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider

    def attempt_done(self, outcome: str, latency_s: float) -> None:
        child(self._metrics.requests, self._provider, outcome).inc()
        if outcome != "cancelled":
            child(self._metrics.latency, self._provider).observe(latency_s)

    def retrying(self, reason: str, delay_s: float) -> None:
        child(self._metrics.retries, self._provider, reason).inc()
