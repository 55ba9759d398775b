"""A Redis outage: 503 on /readyz and on writes within the bound (no hang, no 500), the
fail mode still answers a step whose verdict was cut off, and the service recovers by
itself when Redis comes back on the same address."""

import time
import uuid

from monitor.embedded_redis import EmbeddedRedis
from tests.api_helpers import api_client, mo_step, register, wait_ready
from tests.serve_helpers import free_port


async def _start(port: int) -> EmbeddedRedis:
    server = EmbeddedRedis(extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    await server.start()
    return server


async def test_redis_down_gives_503_and_recovers(settings):
    port = free_port()
    server = await _start(port)
    settings = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{port}/0",
            "redis_op_timeout_s": 1.0,
            "key_prefix": f"down-{uuid.uuid4().hex[:8]}",
        }
    )
    try:
        async with api_client(settings, step_timeout_s=5) as client:
            await wait_ready(client)
            ep = await register(client)
            assert (await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))).status == 200

            await server.stop()
            started = time.monotonic()
            resp = await wait_ready(client, status=503)
            body = await resp.json()
            assert any("redis" in r for r in body["reasons"]), body
            resp = await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(2))
            assert resp.status == 503 and (await resp.json())["error"] == "unavailable"
            resp = await client.post("/v1/episodes", json={"environment": "homeostasis"})
            assert resp.status == 503
            assert (await client.get(f"/v1/episodes/{ep}")).status == 503
            assert (await client.get("/healthz")).status == 200  # alive, just not ready
            assert time.monotonic() - started < 15, "requests must not hang while Redis is down"

            server = await _start(port)  # same address, empty data set
            await wait_ready(client, attempts=300)
            ep2 = await register(client)
            resp = await client.post(f"/v1/episodes/{ep2}/steps", json=mo_step(1))
            body = await resp.json()
            assert resp.status == 200 and body["fail_mode"] is None, body
            metrics = await (await client.get("/metrics")).text()
            assert (
                'runaway_http_requests_total{method="POST",route="/v1/episodes/{episode_id}/steps",status="503"}'
                in metrics
            )
    finally:
        await server.stop()
