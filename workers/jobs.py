"""Episode jobs: building the demo's mix of episodes and submitting jobs to Redis."""

import random
from collections.abc import Iterable

import redis.asyncio as aioredis

from schemas.episode import AgentSpec, EpisodeSpec
from schemas.keys import WORKER_GROUP, Keys
from schemas.redis_io import ensure_group
from schemas.settings import Settings
from schemas.wire import encode_job
from workers.environments.catalog import BENCHMARK_NAMES, OBJECTIVES
from workers.recordings import bundled_recordings, read_tsv

# recordings a replay agent can play in each environment (file name prefix, options)
_REPLAYABLE = {
    "sustainability": ("sustainability_", {}),
    "homeostasis": ("homeostasis_", {}),
    "multiobjective-homeostasis": ("multiobjective-homeostasis_", {}),
    "balancing-unbounded-objectives": ("balancing-unbounded-objectives-with-hint", {"hint": True}),
}


def demo_specs(episodes: int, steps: int, run_id: str, seed: int = 0) -> list[EpisodeSpec]:
    """A mix over all six environments: reference, drifting (each mode) and replay agents."""
    recordings = bundled_recordings()
    specs = []
    for i in range(episodes):
        env = BENCHMARK_NAMES[i % len(BENCHMARK_NAMES)]
        rng = random.Random(seed * 1_000_003 + i)
        options: dict[str, object] = {}
        env_seed = 1 + i
        slot = (i // len(BENCHMARK_NAMES)) % 5
        if slot == 0:
            agent = AgentSpec(kind="reference")
        elif slot == 4 and env in _REPLAYABLE:
            prefix, options = _REPLAYABLE[env]
            source = rng.choice([p for p in recordings if p.name.startswith(prefix)])
            env_seed = read_tsv(source).seed  # the replayed world matches the recording
            agent = AgentSpec(kind="replay", options={"source": str(source)})
        else:
            mode = "cycle" if slot == 3 else None
            flip = rng.randint(max(2, steps // 5), max(3, steps // 2))
            agent = AgentSpec(kind="drifting", options={"flip_step": flip, "mode": mode})
        specs.append(
            EpisodeSpec(
                episode_id=f"{run_id}-{i:05d}",
                environment=env,
                env_options=options,
                objectives=OBJECTIVES[env],
                seed=env_seed,
                steps=steps,
                agent=agent,
                labels={"model": agent.kind},
            )
        )
    return specs


JOBS_MAXLEN: int = Settings.model_fields["jobs_maxlen"].default


class QueueFull(ValueError):
    """The jobs stream would grow past its MAXLEN, which would trim away unrun jobs."""


async def submit_jobs(
    redis: aioredis.Redis, keys: Keys, specs: Iterable[EpisodeSpec], maxlen: int = JOBS_MAXLEN
) -> int:
    """Queue episodes for the workers (one pipelined round trip).

    The stream is capped with ``MAXLEN ~ maxlen`` and workers trim the jobs they finished;
    a submission that would take it past ``maxlen`` is refused (:class:`QueueFull`)
    rather than let the cap drop jobs nobody ran.
    """
    jobs = [encode_job(spec) for spec in specs]
    await ensure_group(redis, keys.jobs(), WORKER_GROUP)
    queued = await redis.xlen(keys.jobs())
    if queued + len(jobs) > maxlen:
        raise QueueFull(f"{keys.jobs()} holds {queued} jobs; {len(jobs)} more exceed {maxlen}")
    pipe = redis.pipeline(transaction=False)
    for fields in jobs:
        pipe.xadd(keys.jobs(), fields, maxlen=maxlen, approximate=True)
    await pipe.execute()
    return len(jobs)
