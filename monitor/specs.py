"""Building EpisodeSpecs for the built-in environments: the one place ``run`` and
``experiment`` share, so both give the detectors and workers identical specs."""

from typing import Any

from schemas.episode import AgentSpec, DetectorConfig, EpisodeSpec, VerdictPolicy
from workers.environments.catalog import OBJECTIVES


def episode_spec(
    episode_id: str,
    environment: str,
    agent: AgentSpec,
    *,
    seed: int,
    steps: int,
    mitigation: str,
    env_options: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    detector: DetectorConfig | None = None,
    policy: VerdictPolicy | None = None,
) -> EpisodeSpec:
    """A spec for one episode of a built-in ``environment`` (its objectives from the catalog).

    ``policy``: the verdict policy (ValueError when it sets block/stop, which a worker's
    built-in agent cannot take)."""
    return EpisodeSpec(
        episode_id=episode_id,
        environment=environment,
        env_options=env_options or {},
        objectives=OBJECTIVES[environment],
        seed=seed,
        steps=steps,
        agent=agent,
        mitigation=mitigation,
        labels=labels or {},
        detector=detector or DetectorConfig(),
        policy=(policy or VerdictPolicy()).check_worker(),
    )
