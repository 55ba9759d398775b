"""The one settings object, read from the environment (prefix ``RUNAWAY_``) once at start."""

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.episode import FailMode, VerdictPolicy
from schemas.keys import Keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNAWAY_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RUNAWAY_REDIS_URL", "REDIS_URL"),
        description="Redis to use; none starts the embedded private server",
    )
    key_prefix: str = Field(default="runaway", pattern=r"^[A-Za-z0-9_.\-]+$")
    shards: int = Field(default=4, ge=1, le=1024)

    # streams
    steps_maxlen: int = Field(default=200_000, ge=1_000, description="MAXLEN ~ for steps")
    control_maxlen: int = Field(default=200, ge=10, description="MAXLEN ~ per control stream")
    verdicts_maxlen: int = Field(
        default=100_000, ge=1_000, description="MAXLEN ~ for each shard's verdicts stream"
    )
    flips_maxlen: int = Field(default=50_000, ge=100)
    deadletter_maxlen: int = Field(default=10_000, ge=100)
    trace_maxlen: int = Field(
        default=200, ge=0, description="MAXLEN ~ per episode step trace (the page); 0: none"
    )
    jobs_maxlen: int = Field(
        default=1_000_000,
        ge=100,
        description="most jobs queued or running; workers trim finished ones as they go",
    )

    # workers
    concurrency: int = Field(default=200, ge=1, description="episodes run at once per worker")
    max_inflight_steps: int = Field(
        default=1,
        ge=1,
        description=(
            "steps an episode may run ahead of its verdicts; 1 (lockstep) makes every run "
            "of the same seeds give the same results and halves detection lag"
        ),
    )
    verdict_timeout_s: float = Field(default=30.0, gt=0, description="worker waits this long")
    worker_policy: VerdictPolicy = Field(
        default_factory=VerdictPolicy,
        description=(
            "verdict policy of worker-run episodes that set none (JSON, e.g. "
            '{"self_imitation": "continue"}); block/stop are refused'
        ),
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    # detectors
    batch_size: int = Field(default=500, ge=1)
    block_ms: int = Field(default=50, ge=1)
    claim_idle_ms: int = Field(default=5_000, ge=10, description="reclaim after this idle")
    max_deliveries: int = Field(default=5, ge=1, description="then dead-letter the entry")
    heartbeat_s: float = Field(default=1.0, gt=0)
    heartbeat_ttl_s: float = Field(
        default=10.0, gt=0, description="a worker's/detector's heartbeat key lives this long"
    )
    loop_stuck_s: float = Field(
        default=30.0, gt=0, description="/readyz: 503 once a loop made no progress this long"
    )

    # service
    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    api_token: SecretStr | None = None
    allowed_hosts: str = Field(
        default="",
        description="Host names served without a token besides loopback ones (comma-separated)",
    )
    allowed_origins: str = Field(
        default="", description="other origins (scheme://host:port) whose requests are served"
    )
    step_timeout_s: float = Field(default=2.0, gt=0, description="sidecar waits for a verdict")
    fail_mode: FailMode = FailMode.CLOSED
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="close a connection without a complete request head (or body) this long "
        "after it connected or finished its last request (idle keep-alive included)",
    )
    max_connections: int = Field(
        default=1_000, ge=8, description="open connections; beyond, the oldest idle one closes"
    )
    redis_op_timeout_s: float = Field(
        default=2.0, gt=0, description="bound on one Redis call in a request (then 503)"
    )
    ready_max_lag: int = Field(
        default=10_000, ge=0, description="/readyz: most unread steps per shard for the group"
    )
    max_active_episodes: int = Field(
        default=10_000,
        ge=1,
        description="unfinished sidecar episodes at once; a registration beyond is 429",
    )
    episode_abandon_s: float = Field(
        default=86_400.0,
        gt=0,
        description="an unfinished sidecar episode without a step this long no longer counts",
    )
    episode_idle_s: float = Field(
        default=600.0,
        gt=0,
        description="a detector drops an episode's state from memory after this long without "
        "a step (it reloads from the checkpoint on the next)",
    )
    sse_max_streams: int = Field(default=100, ge=1, description="open /v1/events streams in all")
    sse_per_client: int = Field(
        default=8, ge=1, description="open /v1/events streams per client address"
    )
    follow_max_episodes: int = Field(
        default=5_000, ge=1, description="episodes the live feed tracks as active at once"
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="worker/detector /metrics port"
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="worker/detector /metrics address (0.0.0.0 in a container)"
    )

    # OpenTelemetry GenAI export of the sidecar's steps and verdicts (the otel extra): on
    # when an OTLP endpoint is set; the OTLP exporter reads the other OTEL_* variables
    otel_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    # Inspect AI integration (monitor/integrations/inspect)
    inspect_hooks: bool = Field(
        default=False, description="stream every Inspect sample's steps to the monitor"
    )

    # model agents (keys: RUNAWAY_OPENAI_API_KEY or OPENAI_API_KEY, and so on; never logged)
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RUNAWAY_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RUNAWAY_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    model_api_key: SecretStr | None = Field(
        default=None, description="key for OpenAI-compatible servers (never the OpenAI key)"
    )
    model_base_url: str | None = Field(default=None, description="default --base-url")
    model_timeout_s: float = Field(default=60.0, gt=0, description="per-attempt timeout")
    model_max_retries: int = Field(default=4, ge=0, le=20, description="retries after the first")
    model_backoff_base_s: float = Field(default=0.5, ge=0, description="first backoff ceiling")
    model_backoff_max_s: float = Field(default=30.0, ge=0, description="backoff ceiling")
    model_max_retry_after_s: float = Field(
        default=120.0, ge=0, description="give up rather than wait longer than this"
    )
    # None: as many as the worker runs episodes (each waits on at most one call), so the
    # worker's concurrency is the bound; hosted APIs limit by requests and tokens per
    # minute, which model_rate_limit_rps and the 429/Retry-After handling cover
    # (docs/models.md, "Concurrency")
    model_concurrency: int | None = Field(
        default=None, ge=1, description="calls at once per provider endpoint; none: concurrency"
    )
    model_rate_limit_rps: float | None = Field(
        default=None, gt=0, description="requests/s per provider; none: unlimited"
    )
    model_temperature: float | None = Field(default=None, ge=0, le=2)
    model_top_p: float | None = Field(default=None, gt=0, le=1)
    model_max_tokens: int = Field(default=256, ge=1, description="answer budget per call")
    model_seed: int | None = None
    context_tokens: int = Field(
        default=8192, ge=256, description="history budget; oldest pairs dropped past it"
    )

    @field_validator("worker_policy")
    @classmethod
    def _worker_actions(cls, v: VerdictPolicy) -> VerdictPolicy:
        return v.check_worker("RUNAWAY_WORKER_POLICY")

    @model_validator(mode="after")
    def _heartbeat_outlives_its_interval(self) -> "Settings":
        if self.heartbeat_ttl_s <= self.heartbeat_s:  # else processes look dead between beats
            raise ValueError("heartbeat_ttl_s must be longer than heartbeat_s")
        return self

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, shards=self.shards)
