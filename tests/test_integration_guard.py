"""The integrations' shared EpisodeGuard: numbering that follows the sidecar after a lost
answer, and the client-side fail mode when the sidecar cannot be reached."""

import asyncio

import pytest

from monitor.client import Monitor, MonitorError
from monitor.integrations.guard import AgentStep, EpisodeGuard, tool_call
from tests.fakes.sidecar import FakeSidecar
from tests.serve_helpers import free_port

STEP = AgentStep(text="thinking", tool_calls=[tool_call("search", '{"q": "fish"}', "c1")])


async def test_steps_carry_tool_calls_and_follow_the_sidecar_after_a_lost_answer(
    fake_sidecar: FakeSidecar,
) -> None:
    guard = EpisodeGuard(Monitor(fake_sidecar.url), episode_id="ep-guard")
    assert (await asyncio.to_thread(guard.report, STEP)).verdict == "continue"
    # step 2 went in but its answer never came back: the guard still thinks it is at 1
    await asyncio.to_thread(Monitor(fake_sidecar.url).step, "ep-guard", 2, text="lost")
    result = await asyncio.to_thread(guard.report, STEP)
    assert result.verdict == "continue" and guard.step == 3
    steps = fake_sidecar.steps["ep-guard"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert steps[0]["tool_calls"] == [{"name": "search", "arguments": {"q": "fish"}, "id": "c1"}]
    assert steps[0]["text"] == "thinking" and "action" not in steps[0]


async def test_an_unreachable_sidecar_raises_or_continues_as_asked() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(MonitorError) as raised:  # the client raises only MonitorError
        await asyncio.to_thread(EpisodeGuard(Monitor(url, timeout_s=2)).report, STEP)
    assert raised.value.status == 0
    guard = EpisodeGuard(Monitor(url, timeout_s=2), unreachable="continue")
    result = await asyncio.to_thread(guard.report, STEP)
    assert result.verdict == "continue" and result.fail_mode == "open"
    assert guard.step == 0  # not taken: the next step is sent with this number again
