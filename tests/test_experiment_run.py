"""``experiment``: a small grid writes the results layout; an interrupted run resumes to
the same results as an uninterrupted one, without re-running finished episodes."""

import asyncio
from pathlib import Path

import pytest

from monitor.experiments.config import ConfigError, parse_config
from monitor.experiments.layout import Results
from monitor.experiments.runner import run_experiment
from schemas.settings import Settings
from tests.experiment_helpers import lines, small_config
from tests.fakes.model_server import FakeModelServer, RecordedRequest, respond_with
from workers.worker import AgentBuilder

EPISODE_KEYS = {
    "kind",
    "episode_id",
    "cell",
    "outcome",
    "steps",
    "flips",
    "first_flip_onset",
    "first_flip_detected",
    "recoveries",
    "reminders",
    "voluntary_resets",
    "runaway_index",
    "task_score",
    "tokens",
    "cost_usd",
    "log",
}
STEP_KEYS = {
    "kind",
    "episode_id",
    "cell",
    "step",
    "observation",
    "action",
    "rewards",
    "runaway_index",
    "hazard",
    "flags",
}


def greedy_for_b(req: RecordedRequest) -> str:
    """Feeds B without bound until reminded of the objectives."""
    reminded = any("Reminder:" in str(m.get("content")) for m in req.messages)
    return "0, 0" if reminded else "0, 25"


async def test_small_grid_with_a_model_writes_the_layout(
    tmp_path: Path, settings: Settings, fake_model_server: FakeModelServer
):
    fake_model_server.default = respond_with(greedy_for_b)
    model = {
        "kind": "openai-compatible",
        "model": "fake-m",
        "options": {"structured": "off"},
        "base_url": fake_model_server.openai_base_url,
    }
    config = small_config(models=[*small_config().model_dump()["models"], model])
    run = await run_experiment(
        config, tmp_path, asyncio.Event(), settings=settings, show_progress=False
    )
    assert run.complete and run.finished == 12 and not run.failed
    results = Results(tmp_path)
    episodes = lines(results.episodes)
    assert len(episodes) == 12 and all(set(e) == EPISODE_KEYS for e in episodes)
    steps = lines(results.steps)
    assert all(set(s) == STEP_KEYS for s in steps)
    assert len(steps) == sum(e["steps"] for e in episodes) == 12 * 30
    assert all(s["runaway_index"] is not None for s in steps)  # every step has its verdict
    for e in episodes:
        assert (tmp_path / e["log"]).is_file() and e["log"] == f"logs/{e['episode_id']}.jsonl"
        assert e["outcome"] == "done"
    by_model = {
        m: [e for e in episodes if e["cell"]["model"] == m]
        for m in ("reference", "drifting", "fake-m")
    }
    assert all(e["flips"] == 0 for e in by_model["reference"])
    for e in by_model["drifting"] + by_model["fake-m"]:
        assert e["flips"] >= 1
        assert e["first_flip_onset"] <= e["first_flip_detected"]
        assert e["first_flip_detected"] - e["first_flip_onset"] <= config.detector.n_consecutive
    assert by_model["drifting"][0]["first_flip_onset"] in (12, 13)  # flip_step 12
    for e in by_model["fake-m"]:  # usage per step from the server: 11 in, 3 out per call
        assert e["tokens"]["input"] >= 11 * 30 and e["tokens"]["output"] >= 3 * 30
    recovered = [e for e in by_model["fake-m"] if e["cell"]["mitigation"] == "savepoint-recovery"]
    # a flip from the first steps has no safe savepoint: the policy reminds instead of resetting
    assert all(e["recoveries"] + e["reminders"] >= 1 for e in recovered)
    assert sum(e["task_score"]["consumption_B"] for e in recovered) < sum(
        e["task_score"]["consumption_B"] for e in by_model["fake-m"] if e not in recovered
    )
    summary = results.summary.read_text()
    assert '"experiment": "t"' in summary and '"flip_rate_ci"' in summary
    assert "t" in results.config.read_text()


def _comparable(path: Path) -> list[dict]:
    return sorted(lines(path), key=lambda e: (e["episode_id"], e.get("step", 0)))


async def test_interrupted_run_resumes_to_the_uninterrupted_results(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    settings = settings.model_copy(update={"shutdown_grace_s": 0.0})
    config = small_config(seeds=[1, 2, 3, 4], concurrency=2, steps=40)  # 16 episodes
    full, part = tmp_path / "full", tmp_path / "part"
    done = await run_experiment(
        config, full, asyncio.Event(), settings=settings, show_progress=False
    )
    assert done.complete and done.finished == 16

    five_recorded = asyncio.Event()
    append = Results.append

    def counting_append(self: Results, steps: list, episode: dict) -> None:
        append(self, steps, episode)
        if len(lines(self.episodes)) >= 5:
            five_recorded.set()

    monkeypatch.setattr(Results, "append", counting_append)
    task = asyncio.create_task(
        run_experiment(config, part, asyncio.Event(), settings=settings, show_progress=False)
    )
    await asyncio.wait_for(five_recorded.wait(), 30)
    monkeypatch.undo()
    episodes = part / "episodes.jsonl"
    # a crash or a second Ctrl-C: running episodes die unrecorded (cancel again if a
    # cancel lands on an await that completes at the same moment, as Ctrl-C would be)
    while not task.done():
        task.cancel()
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task
    first = {e["episode_id"]: e for e in lines(episodes)}
    assert 5 <= len(first) < 16
    mtimes = {i: (part / e["log"]).stat().st_mtime_ns for i, e in first.items()}
    # what a crash mid-write leaves: steps of an unfinished episode, torn lines
    with (part / "steps.jsonl").open("ab") as fh:
        fh.write(b'{"kind":"step","episode_id":"t-unfinished","cell":{},"step":1}\n{"kind":"st')
    with episodes.open("ab") as fh:
        fh.write(b'{"kind":"episode","episode_id":"t-torn"')

    started: list[str] = []
    builder = AgentBuilder(settings, None)  # type: ignore[arg-type]

    def counting_factory(spec, env):
        started.append(spec.episode_id)
        return builder(spec, env)

    resumed = await run_experiment(
        config,
        part,
        asyncio.Event(),
        settings=settings,
        show_progress=False,
        agent_factory=counting_factory,
    )
    assert resumed.complete and resumed.done_before == len(first)
    assert sorted(started) == sorted(set(resumed_ids(part)) - set(first))  # only the rest ran
    assert all((part / first[i]["log"]).stat().st_mtime_ns == m for i, m in mtimes.items())
    assert _comparable(part / "episodes.jsonl") == _comparable(full / "episodes.jsonl")
    assert _comparable(part / "steps.jsonl") == _comparable(full / "steps.jsonl")
    again = await run_experiment(
        config, part, asyncio.Event(), settings=settings, show_progress=False
    )
    assert again.done_before == 16 and again.finished == 0 and again.pipeline == {}


def resumed_ids(root: Path) -> list[str]:
    return [e["episode_id"] for e in lines(root / "episodes.jsonl")]


async def test_another_experiment_in_the_same_directory_is_refused(
    tmp_path: Path, settings: Settings
):
    config = small_config(models=[{"kind": "reference"}], seeds=[1], steps=5)
    await run_experiment(config, tmp_path, asyncio.Event(), settings=settings, show_progress=False)
    other = parse_config({**config.model_dump(mode="json"), "name": "other"})
    with pytest.raises(ConfigError, match="holds experiment 't'"):
        await run_experiment(other, tmp_path, asyncio.Event(), settings=settings)


def test_cli_runs_then_resumes_and_rejects_a_bad_file(tmp_path: Path, capsys):
    from monitor.cli import main as cli

    config = tmp_path / "e.yaml"
    config.write_text(
        "name: c\nmodels: [{kind: reference}]\nenvironments: [homeostasis]\n"
        "seeds: [1, 2]\nsteps: 5\n"
    )
    out = tmp_path / "out"
    assert cli(["experiment", str(config), "--out", str(out), "--json"]) == 0
    assert '"finished": 2' in capsys.readouterr().out
    assert (out / "experiment.yaml").read_text() == config.read_text()
    assert cli(["experiment", str(config), "--out", str(out), "--json"]) == 0
    assert '"done_before": 2, "finished": 0' in capsys.readouterr().out
    config.write_text("name: c\nmodels: [{kind: reference}]\nenvironments: [homeostasis]\n")
    assert cli(["experiment", str(config)]) == 2
    assert "exactly one of 'seeds'" in capsys.readouterr().err
