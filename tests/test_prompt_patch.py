"""Attribution-based prompt patches: the top-ranked message rewritten, the episode replayed.

The fake model runs away exactly while one observation (the trigger) is in its context.
The autopsy ranks that message first; the patch reformulates it (objectives reminder
added), the replay from the onset no longer flips, and the model received the patched
text. Without a patch (top 0) the same replay flips again: the change is the patch's.
"""

from pathlib import Path

from monitor.analysis.autopsy import Asker, AutopsyOptions, find_flip, run_autopsy
from monitor.analysis.patches import rerun_patched
from monitor.analysis.rebuild import load_episode_log, replay
from schemas.reminder import reminder_text
from tests.analysis_helpers import GREEDY, autopsy_agents, flips_at, model_spec, run_logged
from tests.fakes.model_server import FakeModelServer, RecordedRequest, respond_with


def _model(trigger: str):
    """Runs away while ``trigger`` is in the context, else waits (B is above its band)."""

    def answer(req: RecordedRequest) -> str:
        return GREEDY if any(m["content"] == trigger for m in req.messages) else "0, 0"

    return answer


async def test_patching_the_trigger_removes_the_flip(
    redis, settings, fake_model_server: FakeModelServer, tmp_path: Path
):
    fake_model_server.default = respond_with(flips_at(8))
    spec = model_spec("patch-ep", fake_model_server.openai_base_url, steps=20)
    await run_logged(redis, settings, [spec], tmp_path)
    episode = load_episode_log(tmp_path / "patch-ep.jsonl")
    onset = find_flip(episode, None)["onset_step"]
    view = replay(episode, capture={onset}).views[onset]
    trigger_index = len(view.messages) - 5
    trigger = view.messages[trigger_index]["content"]
    fake_model_server.default = respond_with(_model(trigger))
    action_agent, text_agent = await autopsy_agents(fake_model_server.openai_base_url)
    try:
        asker = Asker(action_agent, text_agent, reasks=1)
        autopsy = await run_autopsy(episode, asker, AutopsyOptions(last_n=6, probes=False))
        assert autopsy["leave_one_out"]["messages"][0]["index"] == trigger_index
        unpatched = await rerun_patched(episode, autopsy, asker, top=0, horizon=8)
        fake_model_server.requests.clear()
        patched = await rerun_patched(episode, autopsy, asker, top=1, horizon=8)
    finally:
        await action_agent.aclose()
        await text_agent.aclose()
    assert unpatched["flipped_after"] and not unpatched["flip_removed"]
    assert patched["replayed_steps"] == 8 and not patched["flipped_after"]
    assert patched["flip_removed"] and patched["actions"][0] == {"A": 0.0, "B": 0.0}
    [change] = patched["changes"]
    assert change["index"] == trigger_index and change["role"] == "user"
    sent = fake_model_server.requests[0].messages[trigger_index]["content"]
    assert sent.startswith(reminder_text(episode.spec.objectives)) and sent.endswith(trigger)
