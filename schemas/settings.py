"""The one settings object, read from the environment (prefix ``RUNAWAY_``) once at start."""

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.episode import FailMode
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
    flips_maxlen: int = Field(default=50_000, ge=100)
    deadletter_maxlen: int = Field(default=10_000, ge=100)

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
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    # detectors
    batch_size: int = Field(default=500, ge=1)
    block_ms: int = Field(default=50, ge=1)
    claim_idle_ms: int = Field(default=5_000, ge=10, description="reclaim after this idle")
    max_deliveries: int = Field(default=5, ge=1, description="then dead-letter the entry")
    heartbeat_s: float = Field(default=1.0, gt=0)

    # service
    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    api_token: SecretStr | None = None
    step_timeout_s: float = Field(default=2.0, gt=0, description="sidecar waits for a verdict")
    fail_mode: FailMode = FailMode.CLOSED
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    metrics_port: int | None = Field(default=None, description="worker/detector /metrics port")

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, shards=self.shards)
