"""Steps from tool-using agents through the real sidecar (aiohttp app, real Redis, the
in-process detector) and ``monitor.client``: loops are flagged within the documented
number of repeats (docs/detectors.md, "Loops"), a varied legitimate session is not,
pointer objectives let the runaway detectors watch an inventory agent, a fisher and an
advertiser, and bad shapes get a 422 naming the field."""

import pytest

from monitor.api.openapi import openapi_document
from monitor.client import AsyncMonitor
from monitor.integrations.guard import TOOL_AGENT as GUARD_TOOL_AGENT
from schemas.episode import DetectorConfig
from schemas.events import MAX_TOOL_ARGS, MAX_TOOL_CALLS
from schemas.reminder import TOOL_AGENT_REMINDER
from tests.api_helpers import api_client
from tests.tool_agents import (
    SENTENCE,
    advertiser,
    fisher,
    greedy_catch,
    hoarding_buyer,
    looping_search,
    ping_pong,
    repeating_text,
    run_agent,
    varied_coder,
)

TOOL_AGENT = {"objectives": [{"name": "budget", "kind": "unbounded"}]}
D = DetectorConfig()


async def _session(client, body=TOOL_AGENT):
    url = str(client.server.make_url("")).rstrip("/")
    mon = AsyncMonitor(url, timeout_s=15)
    await mon.__aenter__()
    return mon, await mon.register(**body)


async def _played(settings, agent, steps: int, body=TOOL_AGENT):
    """``agent`` played for ``steps`` against a real sidecar and its detector, its
    episode registered with ``body``."""
    async with api_client(settings, step_timeout_s=10) as client:
        mon, ep = await _session(client, body)
        try:
            return await run_agent(mon, ep, agent, steps=steps)
        finally:
            await mon.__aexit__(None)


async def test_identical_calls_noted_at_2_blocked_at_3_stopped_at_6(settings, redis):
    run = await _played(settings, looping_search, 20)
    verdicts = [v.verdict for v in run.verdicts]
    assert verdicts == ["continue", "continue", "block", "block", "block", "stop"]
    assert run.verdicts[1].reason and "loop suspected" in run.verdicts[1].reason
    assert run.loop_flagged_at == D.loop_repeats == 3  # Gemini CLI flags at 5
    blocked = run.verdicts[2]
    assert blocked.cause == "loop" and blocked.policy == "block"
    assert "web_search called 3 times in a row" in blocked.reason
    assert run.stopped_at == D.loop_stop == 6 and run.verdicts[-1].cause == "loop"


async def test_a_cycle_of_two_calls_is_blocked_at_its_third_repetition(settings, redis):
    run = await _played(settings, ping_pong, 14)
    assert run.first("block") == 2 * D.loop_cycle_repeats == 6
    assert "cycle of 2 tool calls" in run.verdicts[5].reason
    assert run.first("stop") == 2 * D.loop_stop == 12


async def test_repeated_text_is_flagged_at_the_tenth_repeat_of_a_chunk(settings, redis):
    assert len(SENTENCE) >= D.loop_chunk
    run = await _played(settings, repeating_text, 12)
    assert run.loop_flagged_at == D.loop_text_repeats == 10
    assert run.first("block") == 10 and "repeated 10 times" in run.verdicts[9].reason


async def test_a_varied_legitimate_session_is_never_flagged(settings, redis):
    run = await _played(settings, varied_coder, 60)
    assert len(run.verdicts) == 60
    assert all(v.verdict == "continue" and not v.flags for v in run.verdicts)
    assert not any(v.reason for v in run.verdicts)  # not even a noted repeat


async def test_pointer_objective_runaway_on_an_inventory_agent(settings, redis):
    body = {
        "objectives": [
            {
                "name": "W-1",
                "kind": "homeostatic",
                "target": 100,
                "band": 10,
                "pointer": "/inventory/W-1",
            }
        ]
    }
    run = await _played(settings, hoarding_buyer, 16, body)
    first = run.first("reset")
    assert first is not None and 9 <= first <= 9 + D.n_consecutive, first
    reset = run.verdicts[first - 1]
    assert reset.cause == "runaway" and reset.savepoint_step == 8 and reset.reminder
    assert "loop" not in reset.flags


async def test_renewable_pointer_a_greedy_fisher_is_reminded_of_over_exploitation(settings, redis):
    pond = {"name": "fish", "kind": "renewable", "capacity": 20, "pointer": "/pond/fish"}
    run = await _played(settings, fisher(greedy_catch), 16, {"objectives": [pond]})
    # the pond is seen below 8 of 20 from step 3: the 10th such step raises the flag
    assert run.first("remind") == 3 + D.oe_steps - 1 == 12
    remind = run.verdicts[11]
    assert remind.cause == "over_exploitation" and remind.policy == "remind"
    assert "over_exploitation" in remind.flags and remind.reminder
    assert [v.verdict for v in run.verdicts].count("remind") == 1  # once, at the flag
    assert not any("runaway" in v.flags or v.reset for v in run.verdicts)


async def test_unbounded_pointers_with_a_limit_an_advertiser_is_reset_to_its_even_split(
    settings, redis
):
    body = {
        "objectives": [
            {
                "name": "search",
                "kind": "unbounded",
                "pointer": "/tool_results/buy_ads/spent/search",
            },
            {
                "name": "social",
                "kind": "unbounded",
                "pointer": "/tool_results/buy_ads/spent/social",
            },
        ],
        "total_action_limit": 10,
    }
    run = await _played(settings, advertiser(all_to_search_from=12), 18, body)
    assert all(v.verdict == "continue" and not v.flags for v in run.verdicts[:11])
    assert run.first("reset") == 12 + D.n_consecutive - 1 == 16
    reset = run.verdicts[15]
    assert reset.cause == "runaway" and reset.savepoint_step == 11 and reset.reminder
    assert "loop" not in reset.flags


async def test_policy_set_at_registration(settings, redis):
    body = {**TOOL_AGENT, "policy": {"loop": "remind"}}
    run = await _played(settings, looping_search, 8, body)
    assert [v.verdict for v in run.verdicts].count("remind") == 1  # once, at the flag
    assert run.verdicts[2].verdict == "remind" and run.verdicts[2].cause == "loop"
    assert run.stopped_at is None


async def test_a_tool_agent_is_reminded_of_its_loop_not_of_a_nominal_objective(settings, redis):
    """The guards' and OTLP/LiteLLM routes' episodes have one nominal objective
    (tool_use): their reminder speaks of the repeated calls, never of growing tool_use."""
    body = {**GUARD_TOOL_AGENT, "policy": {"loop": "remind"}}
    run = await _played(settings, looping_search, 8, body)
    (remind,) = [v for v in run.verdicts if v.verdict == "remind"]
    assert remind.reminder == TOOL_AGENT_REMINDER and "tool_use" not in remind.reminder


BAD_STEPS = [
    ({"step": 1}, "action"),
    ({"step": 1, "tool_calls": [{"arguments": {}}]}, "tool_calls.0.name"),
    (
        {"step": 1, "tool_calls": [{"name": "x", "arguments": {"a": "y" * MAX_TOOL_ARGS}}]},
        "tool_calls.0.arguments",
    ),
    ({"step": 1, "tool_calls": [{"name": "x"}] * (MAX_TOOL_CALLS + 1)}, "tool_calls"),
    ({"step": 1, "tool_calls": [{"name": "x", "argument": {}}]}, "tool_calls.0.argument"),
    ({"step": 1, "tool_calls": [{"name": "x", "arguments": [1, 2]}]}, "tool_calls.0.arguments"),
    ({"step": 1, "text": "t", "state": {"s": "z" * 70_000}}, "state"),
    ({"step": 1, "text": "t", "action": {"nope": 1}}, "action"),
]


@pytest.mark.parametrize(("body", "field"), BAD_STEPS)
async def test_bad_step_shapes_get_422_naming_the_field(settings, redis, body, field):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes", json=TOOL_AGENT)
        ep = (await resp.json())["episode_id"]
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=body)
        assert resp.status == 422, await resp.text()
        answer = await resp.json()
        assert answer["field"] == field or answer["field"].startswith(field), answer
        assert "y" * 100 not in str(answer) and "z" * 100 not in str(answer)  # no echo


@pytest.mark.parametrize(
    ("policy", "field"),
    [({"runaway": "explode"}, "policy.runaway"), ({"flip": "reset"}, "policy.flip")],
)
async def test_bad_policy_at_registration(settings, redis, policy, field):
    async with api_client(settings, detector=False) as client:
        resp = await client.post("/v1/episodes", json={**TOOL_AGENT, "policy": policy})
        assert resp.status == 422 and (await resp.json())["field"] == field


def test_openapi_document_has_the_new_shapes():
    schemas = openapi_document()["components"]["schemas"]
    step = schemas["StepRequest"]["properties"]
    assert {"tool_calls", "state", "text", "action"} <= set(step)
    assert step["tool_calls"]["maxItems"] == MAX_TOOL_CALLS
    assert {"name", "arguments", "result", "id"} == set(schemas["ToolCall"]["properties"])
    assert set(schemas["VerdictPolicy"]["properties"]) == {
        "runaway",
        "self_imitation",
        "over_exploitation",
        "loop",
    }
    verdict = schemas["StepVerdict"]["properties"]
    assert {"cause", "policy", "reason"} <= set(verdict)
    assert set(verdict["verdict"]["enum"]) == {"continue", "remind", "reset", "block", "stop"}
    assert "pointer" in schemas["ObjectiveSpec"]["properties"]
