"""Shared fixtures: a real Redis (REDIS_URL, else an embedded server) and a clean key space.

Every test gets its own key prefix and its keys are removed afterwards, so tests can run
against a shared server.
"""

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from monitor.embedded_redis import embedded_redis
from schemas.redis_io import connect
from schemas.settings import Settings
from workers.recordings import bundled_recordings

RECORDINGS = bundled_recordings()

pytest_plugins = [
    "tests.fakes.model_server",
    "tests.fakes.llama_server",
    "tests.fakes.sidecar",
    "tests.litellm_proxy",
]


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    async with embedded_redis() as server:
        yield server.url


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        key_prefix=f"test-{uuid.uuid4().hex[:10]}",
        shards=2,
        claim_idle_ms=300,
        heartbeat_s=0.1,
        block_ms=20,
        verdict_timeout_s=10,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = connect(settings.redis_url or "")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.key_prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await client.unlink(*keys[i : i + 500])
    await client.aclose()
