"""The monitor as a LiteLLM proxy guardrail: the pure contract, then a real
``litellm[proxy]==1.108.0`` proxy on loopback (its own cached venv) in front of the
scripted model server, with the monitor's ``/beta/litellm_basic_guardrail_api`` as its
``pre_call`` generic guardrail."""

import aiohttp
import pytest

from monitor.integrations.litellm_guardrail import (
    GuardrailRequest,
    answer,
    assistant_turns,
    conversation_digest,
    episode_key,
)
from schemas.episode import FailMode
from tests.api_helpers import api_client
from tests.litellm_proxy import litellm_proxy, proxy_config

SYSTEM = {"role": "system", "content": "You manage the inventory."}
USER = {"role": "user", "content": "How many widgets?"}


def call_turn(n: int) -> list[dict]:
    """An assistant turn calling the same tool, and the tool's answer."""
    call = {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": "check_inventory", "arguments": '{"item": "widget"}'},
    }
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{n}", "content": "3 in stock"},
    ]


def conversation(turns: int) -> list[dict]:
    return [SYSTEM, USER, *(m for n in range(1, turns + 1) for m in call_turn(n))]


# the contract, as pure functions -------------------------------------------------------
def test_turns_carry_tool_calls_with_their_results():
    turns = assistant_turns([*conversation(2), {"role": "assistant", "content": "3 widgets"}])
    assert turns[0] == (
        [
            {
                "name": "check_inventory",
                "arguments": {"item": "widget"},
                "result": "3 in stock",
                "id": "call_1",
            }
        ],
        None,
    )
    assert turns[2] == ([], "3 widgets") and len(turns) == 3


def test_episode_keys_session_then_callers_trace_then_digest():
    known: dict[str, str] = {}
    digest = conversation_digest(conversation(0))
    assert digest == conversation_digest(conversation(3))  # later requests repeat the opening
    assert digest != conversation_digest([SYSTEM, {"role": "user", "content": "other"}])
    fresh = [
        GuardrailRequest(litellm_trace_id=f"t{i}", structured_messages=conversation(i))
        for i in range(3)
    ]  # the proxy's own trace id: new every request
    assert [episode_key(r, known) for r in fresh[1:]] == [digest, digest]
    opening = GuardrailRequest(litellm_trace_id="mine", structured_messages=conversation(0))
    later = GuardrailRequest(litellm_trace_id="mine", structured_messages=conversation(2))
    assert episode_key(opening, known) == episode_key(later, known) == "litellm-mine"
    session = GuardrailRequest(
        structured_messages=conversation(2),
        additional_provider_specific_params={"session_id": "s-9"},
    )
    assert episode_key(session, known) == "litellm-s-9"


def test_verdicts_map_to_guardrail_actions():
    assert answer("continue", None, None, ["a"]).action == "NONE"
    remind = answer("remind", None, "Mind all objectives.", ["a", "b"])
    assert remind.action == "GUARDRAIL_INTERVENED" and remind.texts == [
        "a",
        "b\n\nMind all objectives.",
    ]
    block = answer("block", "loop: the same tool call 5 times", None, ["a"])
    assert block.action == "BLOCKED" and "the same tool call" in (block.blocked_reason or "")
    reset = answer("reset", "runaway", None, None, savepoint_step=3)
    assert reset.action == "BLOCKED" and "step 3" in (reset.blocked_reason or "")


# the route on a real sidecar -------------------------------------------------------------
async def test_route_steps_each_new_turn_once(settings, redis):
    body = {
        "input_type": "request",
        "litellm_trace_id": "x1",
        "structured_messages": conversation(2),
        "texts": ["How many widgets?"],
    }
    open_mode = {"fail_mode": FailMode.OPEN, "step_timeout_s": 0.2}
    async with api_client(settings, detector=False, **open_mode) as c:
        resp = await c.post("/beta/litellm_basic_guardrail_api", json=body)
        assert resp.status == 200 and (await resp.json())["action"] == "NONE"
        again = await c.post("/beta/litellm_basic_guardrail_api", json=body)  # the proxy retried
        assert (await again.json())["action"] == "NONE"
        key = conversation_digest(conversation(0))
        episode = await (await c.get(f"/v1/episodes/{key}")).json()
        json_type = {"Content-Type": "application/json"}  # any other type is 415 (issue 20)
        bad = await c.post("/beta/litellm_basic_guardrail_api", data=b"{no", headers=json_type)
        assert bad.status == 400
    assert episode["accepted_step"] == 2 and episode["source"] == "litellm"


# a real LiteLLM proxy ------------------------------------------------------------------
async def _chat(proxy: str, messages: list[dict], **extra: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        body = {"model": "local", "messages": messages, **extra}
        async with http.post(f"{proxy}/v1/chat/completions", json=body) as resp:
            return resp.status, await resp.json(content_type=None)


def varied(turns: int) -> list[dict]:
    """A conversation whose tool calls all differ: no loop."""
    msgs = conversation(turns)
    for n, m in enumerate(m for m in msgs if m.get("tool_calls")):
        m["tool_calls"][0]["function"]["arguments"] = f'{{"item": "part-{n}"}}'
    return msgs


@pytest.mark.timeout(900)  # the first run creates the proxy's venv (cached after)
async def test_real_proxy_blocks_a_tool_loop_with_the_reason_and_passes_the_rest(
    settings,
    redis,
    fake_model_server,
    litellm_python,
    tmp_path,
):
    async with api_client(settings, step_timeout_s=10) as monitor:  # the real detector
        monitor_url = str(monitor.make_url("/")).rstrip("/")
        config = proxy_config(fake_model_server.openai_base_url, monitor_url)
        async with litellm_proxy(litellm_python, config, tmp_path) as proxy:
            # the same tool call again and again: the loop flag at 3, policy loop=block
            looping = [await _chat(proxy, conversation(n)) for n in range(4)]
            # another conversation, the caller's own trace id, no loop
            calm = [await _chat(proxy, varied(n), litellm_trace_id="calm-run") for n in range(4)]
            # a loop under a policy that reminds instead: the request goes on, reminded
            policy = {
                "episode_id": "litellm-remind-run",
                "policy": {"loop": "remind"},
                "objectives": [{"name": "tool_use", "kind": "unbounded"}],
            }
            assert (await monitor.post("/v1/episodes", json=policy)).status == 201
            reminded = [
                await _chat(proxy, conversation(n), litellm_trace_id="remind-run") for n in range(4)
            ]
        digest = conversation_digest(conversation(0))
        loop_ep = await (await monitor.get(f"/v1/episodes/{digest}")).json()
        calm_ep = await (await monitor.get("/v1/episodes/litellm-calm-run")).json()
    assert [status for status, _ in looping] == [200, 200, 200, 400], looping
    blocked = str(looping[3][1])
    assert "runaway-monitor: block: loop: check_inventory called 3 times in a row" in blocked
    assert [status for status, _ in calm] == [200, 200, 200, 200], calm
    assert calm[3][1]["choices"][0]["message"]["content"] == "0, 0"  # the model's answer
    assert "loop" in loop_ep["flags"] and loop_ep["accepted_step"] == 3
    assert calm_ep["flags"] == [] and calm_ep["accepted_step"] == 3  # keyed by the trace id
    assert [status for status, _ in reminded] == [200, 200, 200, 200], reminded
    seen_by_model = [str(r.messages) for r in fake_model_server.requests]
    assert len(seen_by_model) == 11  # the blocked request never reached the model
    assert ["Reminder:" in m for m in seen_by_model[7:]] == [False, False, False, True]


async def test_route_closed_fail_mode_blocks_and_names_the_savepoint(settings, redis):
    body = {"structured_messages": conversation(1), "texts": ["How many widgets?"]}
    async with api_client(settings, detector=False, step_timeout_s=0.2) as c:  # closed: default
        resp = await c.post("/beta/litellm_basic_guardrail_api", json=body)
        answer_ = await resp.json()
    assert resp.status == 200 and answer_["action"] == "BLOCKED"
    assert answer_["blocked_reason"].startswith("runaway-monitor: reset: no verdict")
    assert "step 0" in answer_["blocked_reason"]  # no savepoint yet: back to the start
