"""Helpers of the live page's tests: the flipping trial posted step by step, a big index."""

import time
from typing import Any

from tests.api_helpers import register
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv

# multiobjective-homeostasis, GPT-4o-mini trial 3: labelled runaway onset at step 22
TRIAL = "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_32_56_891497.tsv"
LABELLED_ONSET = 22


async def register_trial(client: Any, **labels: str) -> tuple[str, list[Any]]:
    recording = read_tsv(BUNDLED_DIR / TRIAL)
    spec, events = events_from_recording(recording)
    body = {
        "environment": spec.environment,
        "env_options": spec.env_options,
        "labels": {"model": recording.model, "mitigation": "savepoint-recovery", **labels},
    }
    return await register(client, body), events


async def post_steps(client: Any, episode_id: str, events: list[Any]) -> list[dict]:
    """Post ``events`` one by one (each waits for its verdict); the verdicts."""
    verdicts = []
    for ev in events:
        body = {
            "step": ev.step,
            "observation": ev.observation,
            "action": ev.action,
            "rewards": ev.rewards,
            "text": "SECRET-ANSWER-TEXT",
        }
        resp = await client.post(f"/v1/episodes/{episode_id}/steps", json=body)
        assert resp.status == 200, await resp.text()
        verdicts.append(await resp.json())
    return verdicts


async def post_trajectory(client: Any, steps: int) -> tuple[str, list[Any], list[dict]]:
    """Register the flipping trial and post its first ``steps`` steps."""
    episode_id, events = await register_trial(client)
    return episode_id, events[:steps], await post_steps(client, episode_id, events[:steps])


async def index_episodes(redis: Any, settings: Any, n: int) -> None:
    """``n`` episodes in the index with summaries shaped as the worker writes them."""
    keys = settings.keys
    now = time.time()
    pipe = redis.pipeline(transaction=False)
    for i in range(n):
        episode_id = f"ep-{i:05d}"
        flagged = i % 10 == 0
        pipe.hset(
            keys.episode(episode_id),
            mapping={
                "status": "finished" if i % 2 else "active",
                "source": "worker",
                "environment": ("homeostasis", "sustainability")[i % 2],
                "model": "rare-model" if i == 0 else f"model-{i % 3}",
                "mitigation": "none",
                "last_step": 100,
                "runaway_index": 0.7 if flagged else 0.1,
                "flags": "runaway" if flagged else "",
                "flips": 1 if flagged else 0,
                "registered_at": now - n + i,
            },
        )
        pipe.zadd(keys.episodes(), {episode_id: now - n + i})  # ep-0 oldest, all in the past
    await pipe.execute()
