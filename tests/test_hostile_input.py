"""Hostile input at the HTTP boundary (issue 20, items 1-4): every number strict and
finite, magnitudes bounded, free-form values bounded in depth, and whatever the API
accepts is something the detector can read and score."""

import asyncio

import pytest

from schemas.numbers import MAX_MAGNITUDE
from tests.api_helpers import MO, api_client, mo_step, register


def _homeo(**over: object) -> dict:
    spec = {"name": "A", "kind": "homeostatic", "target": 100, "band": 1}
    return {"objectives": [{**spec, **over}]}


@pytest.mark.parametrize(
    ("objective", "field"),
    [
        ({"target": "NaN"}, "objectives.0.target"),
        ({"target": "-Infinity"}, "objectives.0.target"),
        ({"band": "Infinity"}, "objectives.0.band"),
        ({"max_action": "inf"}, "objectives.0.max_action"),
        ({"target": True}, "objectives.0.target"),
        ({"target": 1e300}, "objectives.0.target"),
    ],
)
async def test_objective_numbers_must_be_finite(settings, redis, objective, field):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes", json=_homeo(**objective))
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["field"] == field


async def test_renewable_capacity_must_be_finite(settings, redis):
    async with api_client(settings, detector=False) as client:
        body = {"objectives": [{"name": "fish", "kind": "renewable", "capacity": "inf"}]}
        resp = await client.post("/v1/episodes", json=body)
        assert resp.status == 422 and (await resp.json())["field"] == "objectives.0.capacity"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**mo_step(1), "observation": {"A": True, "B": 1}}, "observation.A"),
        ({**mo_step(1), "action": {"A": 1, "B": False}}, "action.B"),
        ({**mo_step(1), "rewards": {"r": True}}, "rewards.r"),
        ({**mo_step(1), "step": True}, "step"),
        ({**mo_step(1), "invalid_answers": True}, "invalid_answers"),
        ({**mo_step(1), "observation": {"A": 1e308, "B": 1}}, "observation.A"),
        ({**mo_step(1), "action": {"A": 1, "B": -1e13}}, "action.B"),
        ({**mo_step(1), "observation": {"A": "1", "B": 1}}, "observation.A"),
    ],
)
async def test_step_numbers_are_strict_and_bounded(settings, redis, body, field):
    async with api_client(settings, detector=False) as client:
        ep = await register(client)
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=body)
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["field"] == field


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("depth", [20, 220, 300])
async def test_deep_env_options_are_refused(settings, redis, depth):
    async with api_client(settings, detector=False) as client:
        body = {**MO, "env_options": _nested(depth)}
        resp = await client.post("/v1/episodes", json=body)
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["field"].startswith("env_options")


async def test_wide_env_options_are_refused(settings, redis):
    async with api_client(settings, detector=False) as client:
        body = {**MO, "env_options": {"k": list(range(5000))}}
        resp = await client.post("/v1/episodes", json=body)
        assert resp.status == 422 and (await resp.json())["field"].startswith("env_options")


async def test_accepted_options_and_largest_numbers_are_scored(settings, redis):
    """What the API accepts the detector reads: options at the depth bound, and numbers
    at the magnitude bound, get the detector's verdicts with a finite Runaway Index,
    and every read of the episode afterwards is valid JSON."""
    big = MAX_MAGNITUDE
    async with api_client(settings, step_timeout_s=5) as client:
        ep = await register(client, {**MO, "env_options": _nested(8)})
        for step in range(1, 8):
            body = {
                "step": step,
                "observation": {"A": big, "B": -big},
                "action": {"A": big, "B": big},
                "rewards": {"r": -big},
            }
            resp = await client.post(f"/v1/episodes/{ep}/steps", json=body)
            got = await resp.json()
            assert resp.status == 200 and got["fail_mode"] is None, got
            assert 0 <= got["runaway_index"] <= 1
        for path in (f"/v1/episodes/{ep}", "/v1/episodes"):
            resp = await client.get(path)
            text = await resp.text()
            assert resp.status == 200 and "NaN" not in text and "Infinity" not in text
            await resp.json()


async def test_concurrent_hostile_registrations_leave_the_service_working(settings, redis):
    async with api_client(settings, step_timeout_s=5) as client:
        bodies = [_homeo(target="NaN"), {**MO, "env_options": _nested(250)}, _homeo(band=True)]
        resps = await asyncio.gather(*(client.post("/v1/episodes", json=b) for b in bodies * 5))
        assert {r.status for r in resps} == {422}
        ep = await register(client)
        got = await (await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))).json()
        assert got["fail_mode"] is None


async def test_a_non_finite_summary_never_reaches_a_response(settings, redis):
    """An older detector wrote 'nan' into an episode's summary: every answer is still
    strict JSON (no literal NaN for JSON.parse to refuse), the fail mode's too."""
    async with api_client(settings, detector=False, step_timeout_s=0.1) as client:
        ep = await register(client)
        await redis.hset(
            settings.keys.episode(ep), mapping={"runaway_index": "nan", "hazard": "inf"}
        )
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))
        got = await resp.json()
        assert got["fail_mode"] == "closed" and got["runaway_index"] == 0.0
        for path in (f"/v1/episodes/{ep}", "/v1/episodes"):
            text = await (await client.get(path)).text()
            assert (
                "NaN" not in text
                and "Infinity" not in text
                and "null"
                not in text.replace('"registered_at":null', "")
                .replace('"next_offset":null', "")
                .replace('"savepoint_step":null', "")
            )
