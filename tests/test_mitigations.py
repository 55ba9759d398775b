"""Each mitigation's effect on the context the agent receives, through the real runner."""

import pytest

from tests.mitigation_helpers import CapturingAgent, recovery, run_episode
from tests.pipeline_helpers import stream_events
from workers.mitigations import MITIGATIONS, PROMPT_VARIANTS, parse_mitigations


def test_every_mitigation_is_documented_in_one_line():
    for name, doc in MITIGATIONS.items():
        assert doc and "\n" not in doc, name
    parse_mitigations("+".join(n.replace("-K", "-3") for n in MITIGATIONS if n != "none"))
    with pytest.raises(ValueError, match="unknown mitigation"):
        parse_mitigations("savepoint-recovery+make-it-better")
    with pytest.raises(ValueError, match="at least 1"):
        parse_mitigations("short-context-0")


async def test_savepoint_recovery_restores_and_reminds(redis, settings):
    result, agent = await run_episode(
        redis, settings, "savepoint-recovery", control=[(8, [recovery(8, 5)])]
    )
    assert result.recoveries == 1
    _, messages, restored = next(x for x in agent.seen if x[0] == 9)
    assert restored
    # system + 5 steps (user+assistant) + the step-9 observation with the reminder in front
    assert len(messages) == 1 + 2 * 5 + 1
    assert messages[-1]["content"].startswith("REMEMBER\n\n")
    events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("m")))
    assert {e.mitigation for e in events if e.kind == "step"} == {"savepoint-recovery"}


async def test_recovery_without_reminder_and_truncation(redis, settings):
    _, agent = await run_episode(
        redis, settings, "savepoint-recovery-no-reminder", control=[(8, [recovery(8, 5)])]
    )
    messages = next(m for s, m, _ in agent.seen if s == 9)
    assert len(messages) == 12 and "REMEMBER" not in messages[-1]["content"]
    _, agent = await run_episode(
        redis, settings, "truncate-on-flip", control=[(8, [recovery(8, 5)])]
    )
    messages = next(m for s, m, _ in agent.seen if s == 9)
    assert [m["role"] for m in messages] == ["system", "user"]


async def test_no_mitigation_ignores_recovery_commands(redis, settings):
    result, agent = await run_episode(redis, settings, "none", control=[(8, [recovery(8, 5)])])
    assert result.recoveries == 0 and result.recoveries_ignored == 1
    assert len(next(m for s, m, _ in agent.seen if s == 9)) == 1 + 2 * 8 + 1


async def test_periodic_reminder_and_short_context(redis, settings):
    _, agent = await run_episode(redis, settings, "none+reminder-every-4+short-context-2")
    for step, messages, _ in agent.seen:
        assert ("Reminder:" in messages[-1]["content"]) == (step % 4 == 0)
        assert len(messages) <= 1 + 2 * 2 + 1
        assert messages[0]["role"] == "system"


async def test_rolling_summary_replaces_the_history(redis, settings):
    _, agent = await run_episode(redis, settings, "none+rolling-summary-5", steps=7)
    messages = next(m for s, m, _ in agent.seen if s == 6)
    assert "summary at step 5" in messages[0]["content"]
    assert len(messages) == 2  # system (with summary) + the step-6 observation


async def test_few_shot_and_prompt_variants_shape_the_system_prompt(redis, settings):
    _, agent = await run_episode(redis, settings, "none+few-shot-3+zen+permission-to-do-nothing")
    system = agent.seen[0][1][0]["content"]
    assert system.count("Answer: ") == 3
    assert PROMPT_VARIANTS["zen"] in system
    assert PROMPT_VARIANTS["permission-to-do-nothing"] in system


async def test_voluntary_reset_is_honoured_and_recorded(redis, settings):
    agent = CapturingAgent(answers={6: "I went wrong.\nRESET"})
    result, agent = await run_episode(
        redis, settings, "none+voluntary-reset", agent=agent, safe_upto=3
    )
    assert result.voluntary_resets == [6]
    assert "RESET" in agent.seen[0][1][0]["content"]  # the model was told it may
    retry = [m for s, m, restored in agent.seen if s == 6 and restored]
    assert retry and len(retry[0]) == 1 + 2 * 3 + 1  # back to the step-3 savepoint
    events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("m")))
    resets = [e.step for e in events if e.kind == "step" and e.voluntary_reset]
    assert resets == [6]
