"""A loopback sidecar that no web page can write to nor read by DNS rebinding
(issue 20, item 9): JSON bodies only (415), foreign origins refused (403), and without a
token only loopback Host names served (421)."""

import pytest
from pydantic import SecretStr

from tests.api_helpers import MO, api_client, register

EVIL = "https://evil.example"


async def test_a_cross_site_simple_request_writes_nothing(settings, redis):
    async with api_client(settings, detector=False) as client:
        ep = await register(client)
        form = {"Content-Type": "text/plain", "Origin": EVIL}
        resp = await client.post(
            "/v1/episodes", data=b'{"environment": "homeostasis"}', headers=form
        )
        assert resp.status == 403 and (await resp.json())["field"] == "Origin"
        resp = await client.post(f"/v1/episodes/{ep}/finish", headers={"Origin": EVIL})
        assert resp.status == 403
        assert (await (await client.get(f"/v1/episodes/{ep}")).json())["status"] == "active"
        # a foreign page cannot read either
        resp = await client.get("/v1/episodes", headers={"Origin": EVIL})
        assert resp.status == 403
        resp = await client.get(
            "/v1/events", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
        )
        assert resp.status == 403


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]
)
async def test_bodies_must_be_json(settings, redis, ctype):
    async with api_client(settings, detector=False) as client:
        resp = await client.post(
            "/v1/episodes", data=b'{"environment": "homeostasis"}', headers={"Content-Type": ctype}
        )
        assert resp.status == 415 and (await resp.json())["field"] == "Content-Type"
        ok = {"Content-Type": "application/json; charset=utf-8"}
        resp = await client.post("/v1/episodes", data=b'{"environment": "homeostasis"}', headers=ok)
        assert resp.status == 201


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8321", "10.0.0.1", "127.0.0.1.nip.io"]
)
async def test_without_a_token_only_loopback_host_names(settings, redis, host):
    async with api_client(settings, detector=False) as client:
        resp = await client.get("/v1/episodes", headers={"Host": host})
        assert resp.status == 421 and (await resp.json())["field"] == "Host"
        resp = await client.post("/v1/episodes", json=MO, headers={"Host": host})
        assert resp.status == 421
        for good in ("localhost:8321", "127.0.0.1", "[::1]:9"):
            assert (await client.get("/healthz", headers={"Host": good})).status == 200


async def test_allowed_names_and_origins_are_settings(settings, redis):
    over = {"allowed_hosts": "monitor.internal", "allowed_origins": "https://ui.internal"}
    async with api_client(settings, detector=False, **over) as client:
        assert (await client.get("/healthz", headers={"Host": "monitor.internal:80"})).status == 200
        headers = {"Origin": "https://ui.internal"}
        assert (await client.post("/v1/episodes", json=MO, headers=headers)).status == 201
        own = {"Origin": f"http://127.0.0.1:{client.port}"}
        assert (await client.post("/v1/episodes", json=MO, headers=own)).status == 201


async def test_with_a_token_any_host_but_still_no_foreign_origin(settings, redis):
    token = {"Authorization": "Bearer t0k"}
    async with api_client(settings, detector=False, api_token=SecretStr("t0k")) as client:
        headers = {**token, "Host": "monitor.example.com"}
        assert (await client.post("/v1/episodes", json=MO, headers=headers)).status == 201
        resp = await client.post("/v1/episodes", json=MO, headers={**headers, "Origin": EVIL})
        assert resp.status == 403
