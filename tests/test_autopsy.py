"""Flip autopsy against the fake model server: rebuild fidelity, leave-one-out, probes."""

import asyncio
import os
import sys
from pathlib import Path

import orjson

from monitor.analysis.atlas import aggregate_atlas
from monitor.analysis.autopsy import Asker, AutopsyOptions, run_autopsy
from monitor.analysis.rebuild import load_episode_log, replay
from monitor.analysis.results import autopsy_path, read_autopsies
from monitor.cli import main as cli
from schemas.episode import AgentSpec, VerdictPolicy
from tests.analysis_helpers import (
    CALM,
    GREEDY,
    autopsy_agents,
    flips_at,
    model_spec,
    run_logged,
    write_results,
)
from tests.fakes.model_server import FakeModelServer, RecordedRequest, respond_with


def greedy_for_b(req: RecordedRequest) -> str:
    """Calm at step 1 (so a safe savepoint exists: a reset, not the remind fallback), then
    greedy for B until reminded."""
    reminded = any("Reminder:" in str(m.get("content")) for m in req.messages)
    if not any(m["role"] == "assistant" for m in req.messages):
        return CALM
    return "0, 0" if reminded else "0, 25"


async def test_rebuilt_contexts_equal_what_the_model_received(
    redis, settings, fake_model_server: FakeModelServer, tmp_path: Path
):
    """Recoveries, reminders and savepoints included: every step's context, byte for byte.

    Two episodes: one whose self-imitation only is noted, so the flip's reset (context
    restored to the savepoint, with the reminder) is exercised; one under the default
    policy, whose self-imitation ``remind`` (reminder added, context kept) comes first."""
    fake_model_server.default = respond_with(greedy_for_b)
    reset_spec = model_spec(
        "rebuild-ep",
        fake_model_server.openai_base_url,
        steps=24,
        mitigation="savepoint-recovery+reminder-every-7",
    ).model_copy(update={"policy": VerdictPolicy(self_imitation="continue")})
    remind_spec = reset_spec.model_copy(
        update={"episode_id": "rebuild-remind", "policy": VerdictPolicy()}
    )
    for spec, counter in ((reset_spec, "recoveries"), (remind_spec, "reminders")):
        fake_model_server.requests.clear()
        (result,) = await run_logged(redis, settings, [spec], tmp_path)
        assert getattr(result, counter) >= 1, f"{spec.episode_id} must exercise {counter}"
        episode = load_episode_log(tmp_path / f"{spec.episode_id}.jsonl")
        rebuilt = replay(episode)
        assert rebuilt.mismatches == []
        sent = [r.messages for r in fake_model_server.requests]
        assert len(sent) == len(rebuilt.views) == 24
        for step, messages in enumerate(sent, start=1):
            assert rebuilt.views[step].messages == messages, f"{spec.episode_id} step {step}"


def _autopsy_model(trigger: str):
    """Greedy exactly when ``trigger`` is in the context; probes answer by the history."""

    def answer(req: RecordedRequest) -> str:
        last = str(req.messages[-1]["content"])
        ran_away = any(m["content"] == GREEDY for m in req.messages if m["role"] == "assistant")
        if "primary objective" in last:
            return "Maximise B." if ran_away else "Keep A and B in their bands."
        if "Answer with the number first" in last:
            return "5" if ran_away else "2"
        if "Pause the simulation" in last:
            return "No." if ran_away else "Yes."
        return GREEDY if any(m["content"] == trigger for m in req.messages) else CALM

    return answer


async def test_leave_one_out_finds_the_trigger_and_probes_differ(
    redis, settings, fake_model_server: FakeModelServer, tmp_path: Path
):
    fake_model_server.default = respond_with(flips_at(8))
    spec = model_spec("flip-ep", fake_model_server.openai_base_url, steps=20)
    await run_logged(redis, settings, [spec], tmp_path)
    episode = load_episode_log(tmp_path / "flip-ep.jsonl")

    from monitor.analysis.autopsy import find_flip

    onset = find_flip(episode, None)["onset_step"]
    view = replay(episode, capture={onset}).views[onset]
    trigger_index = len(view.messages) - 5  # the observation two steps before the flip
    trigger = view.messages[trigger_index]["content"]
    assert [m["content"] for m in view.messages].count(trigger) == 1
    fake_model_server.default = respond_with(_autopsy_model(trigger))

    action_agent, text_agent = await autopsy_agents(fake_model_server.openai_base_url)
    try:
        autopsy = await run_autopsy(
            episode,
            Asker(action_agent, text_agent, reasks=1),
            AutopsyOptions(last_n=6, shapley=3, pre_gap=4),
        )
    finally:
        await action_agent.aclose()
        await text_agent.aclose()

    rows = autopsy["leave_one_out"]["messages"]
    assert len(rows) == 6
    top = rows[0]
    assert top["index"] == trigger_index and top["role"] == "user"
    assert top["influence"] > 0 and top["changed"] == 1.0
    assert top["actions"] == [{"A": 1, "B": 1}]
    assert all(r["influence"] == 0 for r in rows[1:])
    assert top["shapley"] > 0 and all(r["shapley"] == 0 for r in rows[1:])
    assert top["kinds"] and top["kinds"] != ["system_prompt"]

    probes = {item["id"]: item for item in autopsy["probes"]["items"]}
    assert autopsy["probes"]["pre_step"] == onset - 4
    assert probes["objective"]["post"]["mentions"] == ["B"]
    assert probes["objective"]["pre"]["mentions"] == ["A", "B"]
    assert probes["more-is-better"]["score_delta"] == 3
    # each probe in its own conversation: one question per request, after the history
    asked = [r for r in fake_model_server.requests if "Pause" in str(r.messages[-1]["content"])]
    assert len(asked) == 2 * len(probes)
    assert all(sum("Pause" in str(m["content"]) for m in r.messages) == 1 for r in asked)
    orjson.dumps(autopsy)  # JSON-able


async def test_cli_writes_the_autopsy_into_the_results(
    redis, settings, fake_model_server: FakeModelServer, tmp_path: Path
):
    """``autopsy RESULTS ID`` with the model recorded in the spec; the atlas reads it back."""
    fake_model_server.default = respond_with(flips_at(6))
    results = tmp_path / "results"
    spec = model_spec("cli-ep", fake_model_server.openai_base_url, steps=16)
    await run_logged(redis, settings, [spec], results / "logs")
    write_results(results)
    fake_model_server.default = respond_with(_autopsy_model("no such message"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "autopsy",
        str(results),
        "cli-ep",
        "--last",
        "4",
        "--no-probes",
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "leave-one-out over the last 4 messages" in text and "autopsy of cli-ep" in text
    (stored,) = read_autopsies(results)
    assert stored == orjson.loads(autopsy_path(results, "cli-ep").read_bytes())
    # the fake model answers calmly without its trigger: every ablation changes nothing
    assert stored["leave_one_out"]["baseline_actions"] == [{"A": 1, "B": 1}]
    assert len(stored["leave_one_out"]["messages"]) == 4
    assert aggregate_atlas([stored])["with_influence"] == 0


def test_cli_refuses_a_missing_episode_and_a_scripted_agent(tmp_path: Path, capsys):
    assert cli(["autopsy", str(tmp_path), "nope"]) == 2
    assert "no episode" in capsys.readouterr().err
    log = tmp_path / "logs" / "x.jsonl"
    log.parent.mkdir()
    spec = model_spec("x", "http://127.0.0.1:9/v1").model_copy(
        update={"agent": AgentSpec(kind="drifting")}
    )
    log.write_bytes(
        orjson.dumps(
            {
                "kind": "episode_started",
                "episode_id": "x",
                "step": 0,
                "spec": spec.model_dump(mode="json"),
            }
        )
        + b"\n"
    )
    assert cli(["autopsy", str(log)]) == 2
    assert "re-asks a model" in capsys.readouterr().err
