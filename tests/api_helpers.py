"""Running the sidecar app in a test: aiohttp's TestServer/TestClient, no pytest plugin."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import create_app
from schemas.settings import Settings

MO = {"environment": "multiobjective-homeostasis"}


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, *, detector: bool = True, **overrides: Any
) -> AsyncIterator[TestClient]:
    """A client for a fresh app on loopback (with an in-process detector unless told)."""
    if overrides:
        settings = settings.model_copy(update=overrides)
    app = create_app(settings, with_detector=detector)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def register(client: TestClient, body: dict[str, Any] | None = None, **kw: Any) -> str:
    resp = await client.post("/v1/episodes", json=body or MO, **kw)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["episode_id"]


def mo_step(step: int, a: float = 110, b: float = 120, da: float = 1, db: float = 1) -> dict:
    return {"step": step, "observation": {"A": a, "B": b}, "action": {"A": da, "B": db}}


async def wait_ready(client: TestClient, status: int = 200, attempts: int = 200) -> ClientResponse:
    """Poll /readyz (every 50 ms, bounded) until it answers ``status``."""
    for _ in range(attempts):
        resp = await client.get("/readyz")
        if resp.status == status:
            return resp
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}: {await resp.text()}")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in a /metrics text whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
