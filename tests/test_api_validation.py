"""Sidecar API contract: registration, validation (422 naming the field, nothing echoed),
unknown episodes (404), duplicates and gaps (409, nothing half-written), auth, body size."""

import pytest
from pydantic import SecretStr

from monitor.api.auth import check_bind, is_loopback
from tests.api_helpers import MO, api_client, mo_step, register

SECRET = "SECRET-PROMPT-do-not-echo"
JSON = {"Content-Type": "application/json"}


async def test_register_builtin_and_generic(settings, redis):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes", json=MO)
        assert resp.status == 201
        body = await resp.json()
        assert body["episode_id"] and body["objectives"] == ["A", "B"]
        assert body["fail_mode"] == "closed"

        generic = {
            "episode_id": "mine-1",
            "objectives": [
                {"name": "A", "kind": "homeostatic", "target": 110, "band": 11},
                {"name": "gold", "kind": "unbounded"},
                {"name": "fish", "kind": "renewable", "capacity": 20},
            ],
            "detector": {"n_consecutive": 3, "ri_threshold": 0.4},
            "fail_mode": "open",
            "labels": {"model": "gpt-x", "mitigation": "none"},
        }
        resp = await client.post("/v1/episodes", json=generic)
        assert resp.status == 201
        assert (await resp.json())["episode_id"] == "mine-1"
        # the same spec again is idempotent; another spec under the same id conflicts
        assert (await client.post("/v1/episodes", json=generic)).status == 200
        other = {**generic, "fail_mode": "closed"}
        resp = await client.post("/v1/episodes", json=other)
        assert resp.status == 409 and (await resp.json())["field"] == "episode_id"

        resp = await client.get("/v1/episodes/mine-1")
        assert resp.status == 200
        ep = await resp.json()
        assert [o["name"] for o in ep["objectives"]] == ["A", "gold", "fish"]
        assert ep["fail_mode"] == "open" and ep["status"] == "active"
        assert ep["labels"]["model"] == "gpt-x"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"environment": "nope"}, "environment"),
        ({"objectives": [{"name": "A", "kind": "weird"}]}, "objectives.0.kind"),
        ({"objectives": [{"name": "A", "kind": "homeostatic"}]}, "objectives.0"),
        ({"objectives": [{"name": "A", "kind": "unbounded"}] * 2}, "objectives"),
        ({"environment": "homeostasis", "fail_mode": "sideways"}, "fail_mode"),
        (
            {"environment": "homeostasis", "detector": {"n_consecutive": 0}},
            "detector.n_consecutive",
        ),
        ({"environment": "homeostasis", "episode_id": "bad id/" + SECRET}, "episode_id"),
        ({"environment": "homeostasis", "prompt": SECRET}, "prompt"),
    ],
)
async def test_register_validation_names_the_field(settings, redis, body, field):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes", json=body)
        text = await resp.text()
        assert resp.status == 422, text
        got = await resp.json()
        assert got["error"] == "validation_error"
        assert got["field"].startswith(field), got
        assert SECRET not in text


async def test_step_validation(settings, redis):
    async with api_client(settings, detector=False, step_timeout_s=0.05) as client:
        ep = await register(client)
        url = f"/v1/episodes/{ep}/steps"
        cases = [
            ({"observation": {"A": 1, "B": 2}, "action": {"A": 0, "B": 0}}, "step"),
            ({**mo_step(1), "step": 0}, "step"),
            ({**mo_step(1), "step": "one"}, "step"),
            ({"step": 1, "observation": {"A": 1}, "action": {"A": 0, "B": 0}}, "observation"),
            ({"step": 1, "observation": {"A": 1, "B": 2}, "action": {"A": 0, "C": 0}}, "action"),
            ({**mo_step(1), "action": {"A": "lots", "B": 0}}, "action.A"),
            ({**mo_step(1), "text": SECRET, "extra": 1}, "extra"),
            ({**mo_step(1), "text": 5}, "text"),
        ]
        for body, field in cases:
            resp = await client.post(url, json=body)
            text = await resp.text()
            assert resp.status == 422, (body, text)
            assert (await resp.json())["field"] == field, text
            assert SECRET not in text
        resp = await client.post(
            url, data=b'{"step": 1, "text": "' + SECRET.encode() + b'"', headers=JSON
        )
        assert resp.status == 400 and (await resp.json())["field"] == "body"
        assert SECRET not in await resp.text()
        resp = await client.post(url, data=b'{"step": NaN}', headers=JSON)
        assert resp.status == 400
        resp = await client.post(url, json=[1, 2])
        assert resp.status == 422 and (await resp.json())["field"] == "body"


async def test_unknown_episode_is_404(settings, redis):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes/nope/steps", json=mo_step(1))
        assert resp.status == 404 and (await resp.json())["field"] == "episode_id"
        assert (await client.get("/v1/episodes/nope")).status == 404
        assert (await client.post("/v1/episodes/nope/finish")).status == 404


async def test_duplicates_and_gaps_are_409_and_write_nothing(settings, redis):
    async with api_client(settings, detector=False, step_timeout_s=0.05) as client:
        ep = await register(client)
        stream = settings.keys.steps(settings.keys.shard_of(ep))
        url = f"/v1/episodes/{ep}/steps"
        assert (await client.post(url, json=mo_step(1))).status == 200
        assert (await client.post(url, json=mo_step(2))).status == 200
        before = await redis.xlen(stream)
        resp = await client.post(url, json=mo_step(2))
        body = await resp.json()
        assert resp.status == 409 and body["error"] == "duplicate_step"
        assert body["field"] == "step" and body["expected_step"] == 3
        resp = await client.post(url, json=mo_step(1))
        assert resp.status == 409 and (await resp.json())["error"] == "duplicate_step"
        resp = await client.post(url, json=mo_step(5))
        body = await resp.json()
        assert resp.status == 409 and body["error"] == "step_gap" and body["expected_step"] == 3
        assert await redis.xlen(stream) == before
        summary = await redis.hgetall(settings.keys.episode(ep))
        assert summary[b"accepted_step"] == b"2"
        # a finished episode takes no more steps
        assert (await client.post(f"/v1/episodes/{ep}/finish")).status == 200
        assert (await (await client.get(f"/v1/episodes/{ep}")).json())["status"] == "finished"
        resp = await client.post(url, json=mo_step(3))
        assert resp.status == 409 and (await resp.json())["error"] == "episode_finished"


async def test_concurrent_duplicates_accept_exactly_one(settings, redis):
    import asyncio

    async with api_client(settings, detector=False, step_timeout_s=0.05) as client:
        ep = await register(client)
        url = f"/v1/episodes/{ep}/steps"
        resps = await asyncio.gather(*(client.post(url, json=mo_step(1)) for _ in range(10)))
        assert sorted(r.status for r in resps) == [200] + [409] * 9


async def test_auth(settings, redis):
    token = "s3cret-token"
    async with api_client(settings, detector=False, api_token=SecretStr(token)) as client:
        resp = await client.post("/v1/episodes", json=MO)
        assert resp.status == 401 and (await resp.json())["field"] == "Authorization"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = await client.post("/v1/episodes", json=MO, headers={"Authorization": "Basic x"})
        assert resp.status == 401
        resp = await client.post("/v1/episodes", json=MO, headers={"Authorization": "Bearer wrong"})
        assert resp.status == 403
        assert token not in await resp.text()
        good = {"Authorization": f"Bearer {token}"}
        ep = await register(client, headers=good)
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))
        assert resp.status == 401
        # episode data is behind the token too; the page, metrics and probes stay open
        for path in (
            f"/v1/episodes/{ep}",
            "/v1/episodes",
            f"/v1/episodes/{ep}/steps",
            "/v1/flips",
            "/v1/totals",
            "/v1/events",
        ):
            assert (await client.get(path)).status == 401, path
            assert (await client.get(path, headers={"Authorization": "Bearer no"})).status == 403
        assert (await client.get(f"/v1/episodes/{ep}", headers=good)).status == 200
        assert (await client.get("/v1/totals", headers=good)).status == 200
        for path in ("/healthz", "/", "/metrics", "/openapi.json", "/static/uPlot.iife.min.js"):
            assert (await client.get(path)).status == 200, path


async def test_body_size_limit(settings, redis):
    async with api_client(settings, detector=False, max_body_bytes=2048) as client:
        ep = await register(client)
        body = {**mo_step(1), "text": SECRET + "x" * 5000}
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=body)
        assert resp.status == 413 and (await resp.json())["field"] == "body"
        assert SECRET not in await resp.text()


def test_bind_guard():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "token")
    with pytest.raises(ValueError, match="RUNAWAY_API_TOKEN"):
        check_bind("0.0.0.0", None)


async def test_steps_accepted_in_one_batch_keep_their_own_answers(settings, redis):
    """A next step, a duplicate, a gap and an unknown episode sent at the same instant go
    out in one accept call; each request still gets its own answer."""
    import asyncio

    async with api_client(settings, detector=False, step_timeout_s=0.2) as client:
        a, b = await register(client), await register(client)
        assert (await client.post(f"/v1/episodes/{a}/steps", json=mo_step(1))).status == 200
        posts = [
            client.post(f"/v1/episodes/{a}/steps?wait=false", json=mo_step(2)),
            client.post(f"/v1/episodes/{b}/steps?wait=false", json=mo_step(1)),
            client.post(f"/v1/episodes/{b}/steps?wait=false", json=mo_step(3)),
            client.post("/v1/episodes/nobody/steps?wait=false", json=mo_step(1)),
        ]
        answers = await asyncio.gather(*posts)
        assert [r.status for r in answers] == [202, 202, 409, 404]
        assert (await answers[2].json())["error"] == "step_gap"
