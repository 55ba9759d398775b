"""Episode jobs: building the demo's mix of episodes and submitting jobs to Redis."""

import random
from collections.abc import Iterable

import redis.asyncio as aioredis

from schemas.episode import AgentSpec, EpisodeSpec
from schemas.keys import WORKER_GROUP, Keys
from schemas.redis_io import ensure_group
from schemas.wire import encode_job
from workers.environments.catalog import ENVIRONMENT_NAMES, OBJECTIVES
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
        env = ENVIRONMENT_NAMES[i % len(ENVIRONMENT_NAMES)]
        rng = random.Random(seed * 1_000_003 + i)
        options: dict[str, object] = {}
        env_seed = 1 + i
        slot = (i // len(ENVIRONMENT_NAMES)) % 5
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


async def submit_jobs(redis: aioredis.Redis, keys: Keys, specs: Iterable[EpisodeSpec]) -> int:
    """Queue episodes for the workers (one pipelined round trip)."""
    await ensure_group(redis, keys.jobs(), WORKER_GROUP)
    pipe = redis.pipeline(transaction=False)
    n = 0
    for spec in specs:
        pipe.xadd(keys.jobs(), encode_job(spec))
        n += 1
    await pipe.execute()
    return n
