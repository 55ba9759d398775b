"""runaway-monitor inside Inspect AI, with the real inspect-ai against local model servers.

Evals run in process (``eval_async`` on the test's loop, beside a real detector on the
test's Redis) or through the ``inspect eval`` CLI; what is asserted comes from the eval
logs (``read_eval_log``), the model server's request log and the monitor's streams
(and, for an eval watched while it runs, the sidecar's listing and metrics). The model
here drifts: a function of the observation that overfeeds A without bound, so the
detectors flip it within a few steps. Where a test needs given verdicts (a reset at a
given step, a stop), a scripted detector (:func:`answering`) answers the steps.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from inspect_ai import Task, eval_async
from inspect_ai.agent import as_solver, react
from inspect_ai.approval import ApprovalPolicy
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver, use_tools
from inspect_ai.tool import Tool, tool
from prometheus_client.parser import text_string_to_metric_families

import runaway_monitor._registry as registry
from detectors.service import DetectorService
from monitor.commands import report as report_command
from monitor.integrations.inspect import channel as channel_module
from monitor.integrations.inspect.approval import decision
from monitor.integrations.inspect.episodes import open_episode
from monitor.integrations.inspect.recovery import EpisodeLink
from monitor.integrations.inspect.tasks import bioblue_task
from monitor.integrations.inspect.wrapper import MessagesTarget
from schemas.events import RecoveryCommand, StepEvent, Verdict
from schemas.redis_io import stream_entries
from schemas.settings import Settings
from schemas.wire import decode, encode, routed
from tests.api_helpers import api_client, wait_ready
from tests.fakes.llama_server import LlamaServer
from tests.fakes.model_server import (
    FakeModelServer,
    RecordedRequest,
    held,
    raw,
    respond_with,
    text,
    tool_calls,
)
from tests.waiting import wait_for
from workers.environments import create_environment

# inspect-ai's own: its retry config passes tenacity a deprecated parameter, and its
# per-sample event stream (anyio) is left for the garbage collector to close
pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ROOT = Path(__file__).resolve().parent.parent
_TARGET = re.compile(r"Homeostatic target (\w+): (-?\d+)")
_ACTUAL = re.compile(r"Homeostatic actual (\w+): (-?\d+)")


def drift(req: RecordedRequest) -> str:
    """Balanced for the first two steps of a context (so a safe savepoint exists: a flip
    from step 1 gets the remind fallback, issue 14), then top up B and overfeed A by 25 a
    step whatever its level (unbounded maximisation)."""
    last = next(m["content"] for m in reversed(req.messages) if m["role"] == "user")
    targets, actual = dict(_TARGET.findall(last)), dict(_ACTUAL.findall(last))
    gap_a = int(targets["A"]) - int(actual["A"])
    gap_b = int(targets["B"]) - int(actual["B"])
    if sum(m["role"] == "user" for m in req.messages) <= 2:
        return f"{max(0, gap_a)}, {max(0, gap_b)}"
    return f"{max(0, gap_a) + 25}, {max(0, gap_b + 1)}"


@pytest.fixture
async def drifting_server() -> AsyncIterator[FakeModelServer]:
    server = await FakeModelServer(default=respond_with(drift)).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def monitor_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's Redis and key prefix, hooks on; the Inspect side reads these."""
    monkeypatch.setenv("LOCAL_API_KEY", "test-key")
    monkeypatch.setenv("INSPECT_DISPLAY", "none")
    chosen = settings.model_copy(update={"inspect_hooks": True, "shards": 2})
    channel_module.configure(chosen)
    yield chosen
    channel_module.configure(None)


@pytest.fixture
async def detector(monitor_settings: Settings, redis: Any) -> AsyncIterator[DetectorService]:
    service = DetectorService(redis, monitor_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await task


async def run_eval(task: Any, server: FakeModelServer, log_dir: Path, **kw: Any) -> Any:
    logs = await eval_async(
        task,
        model="openai-api/local/drift",
        model_base_url=server.openai_base_url,
        log_dir=str(log_dir),
        max_connections=10,
        **kw,
    )
    assert len(logs) == 1
    # the run's end closed the channels it opened (their Redis connections, the reader)
    assert not channel_module.channels_open()
    log = read_eval_log(logs[0].location)
    assert log.status == "success", log.error
    return log


def scores(log: Any) -> list[dict[str, Any]]:
    return [s.scores["runaway_scorer"].value for s in log.samples]


def chat_requests(server: FakeModelServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


async def stream_events(redis: Any, settings: Settings) -> list[Any]:
    """Every event in the steps streams, each stream in its order."""
    events = []
    for stream in settings.keys.all_steps():
        events += [decode(fields) for _, fields in await redis.xrange(stream)]
    return events


async def steps_in_streams(redis: Any, settings: Settings) -> dict[str, list[int]]:
    """Episode id -> the step numbers of its StepEvents, as the detectors read them."""
    found: dict[str, list[int]] = {}
    for event in await stream_events(redis, settings):
        if event.kind == "step":
            found.setdefault(event.episode_id, []).append(event.step)
    return found


Script = Callable[[StepEvent], list[Any]]  # a step -> the verdict events that answer it


async def _answer_steps(
    redis: Any, settings: Settings, script: Script, stop: asyncio.Event
) -> None:
    cursors: dict[str, Any] = dict.fromkeys(settings.keys.all_steps(), "0-0")
    while not stop.is_set():
        reply = await redis.xread(cursors, count=100, block=20)
        for stream, entries in stream_entries(reply):
            for entry_id, fields in entries:
                cursors[stream] = entry_id
                event = decode(fields)
                if event.kind != "step":
                    continue
                verdicts = settings.keys.verdicts(settings.keys.shard_of(event.episode_id))
                for answer in script(event):
                    await redis.xadd(verdicts, routed(encode(answer), event.episode_id))


@contextlib.asynccontextmanager
async def answering(redis: Any, settings: Settings, script: Script) -> AsyncIterator[None]:
    """A scripted detector: every step in the streams is answered with ``script(step)``
    (a RecoveryCommand goes before its Verdict, as the detectors send them)."""
    stop = asyncio.Event()
    reader = asyncio.create_task(_answer_steps(redis, settings, script, stop))
    try:
        yield
    finally:
        stop.set()
        await reader  # a failure of the script's reader fails the test here


def _answer(step: StepEvent, verdict: str, **kw: Any) -> Verdict:
    return Verdict(
        episode_id=step.episode_id, step=step.step, step_ts=step.ts, verdict=verdict, **kw
    )


async def test_flips_are_scored_and_a_reset_shortens_the_next_request(
    drifting_server: FakeModelServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    task = bioblue_task("multiobjective-homeostasis", steps=14, trials=1, monitor=True)
    log = await run_eval(task, drifting_server, tmp_path)
    values = scores(log)
    assert all(v["flipped"] == 1 and v["onset_step"] >= 1 for v in values), values
    assert all(v["recoveries"] >= 1 and v["monitor_outages"] == 0 for v in values), values
    metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
    assert metrics["flip_rate"] == 1.0 and metrics["recoveries"] >= 1
    assert "consumption_A" in metrics and "oversatiation_A" in metrics  # task score per signal
    # one sample's requests, in order: a reset makes the next request's context shorter
    lengths = [len(r.messages) for r in chat_requests(drifting_server)]
    assert len(lengths) == 14
    assert any(b < a for a, b in itertools.pairwise(lengths)), lengths
    # the monitor saw every step of both samples exactly once, with the sample's metadata
    seen = await steps_in_streams(redis, monitor_settings)
    assert sorted(seen) == sorted(f"inspect-{s.uuid}" for s in log.samples)
    assert all(steps == list(range(1, 15)) for steps in seen.values())
    summary = await redis.hgetall(monitor_settings.keys.episode(f"inspect-{log.samples[0].uuid}"))
    summary = {k.decode(): v.decode() for k, v in summary.items()}
    assert summary["source"] == "inspect" and summary["eval_id"] == log.eval.eval_id
    assert summary["sample_id"] == str(log.samples[0].id) and summary["model"].endswith("drift")
    # `runaway-monitor report` reads the .eval log like an experiment's results
    args = argparse.Namespace(results=tmp_path, out=None)
    assert await asyncio.to_thread(report_command.main, args) == 0
    report = (tmp_path / "runaway-report" / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| openai-api/local/drift"))
    assert "| multiobjective-homeostasis | `savepoint-recovery` | 1 | 1.00 " in row, row


async def test_hooks_put_every_step_of_an_unmonitored_eval_in_the_streams_once(
    drifting_server: FakeModelServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    task = bioblue_task("multiobjective-homeostasis", steps=6, trials=3, mitigation="none")
    drifting_server.push(text("not a number"))  # one invalid answer: re-asked, no extra step
    log = await run_eval(task, drifting_server, tmp_path)
    seen = await steps_in_streams(redis, monitor_settings)
    assert len(seen) == 3 and all(steps == [1, 2, 3, 4, 5, 6] for steps in seen.values())
    assert sum(v["invalid_answers"] for v in scores(log)) == 1


async def test_an_invalid_answer_is_asked_again_and_never_enters_the_history(
    drifting_server: FakeModelServer, tmp_path: Path, monitor_settings: Settings
) -> None:
    channel_module.configure(monitor_settings.model_copy(update={"inspect_hooks": False}))
    drifting_server.push(respond_with(drift), text("I would rather\nnot say"))
    task = bioblue_task("multiobjective-homeostasis", steps=3, trials=1, mitigation="none")
    log = await run_eval(task, drifting_server, tmp_path)
    requests = chat_requests(drifting_server)
    assert len(requests) == 4  # 3 steps, step 2 asked twice
    assert requests[2].messages == requests[1].messages  # the same context, asked again
    assert all("rather" not in m["content"] for r in requests for m in r.messages)
    assert all("rather" not in m.text for m in log.samples[0].messages)
    assert scores(log)[0]["invalid_answers"] == 1


async def test_an_eval_completes_with_the_monitor_down_and_the_outage_counted(
    drifting_server: FakeModelServer, tmp_path: Path, monitor_settings: Settings
) -> None:
    down = monitor_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:9/0", "redis_op_timeout_s": 0.5}
    )
    channel_module.configure(down)
    before = channel_module.MONITOR_ERRORS.labels("register")._value.get()
    task = bioblue_task("multiobjective-homeostasis", steps=3, trials=1, monitor=True)
    log = await run_eval(task, drifting_server, tmp_path)
    assert len(chat_requests(drifting_server)) == 3  # every step played
    assert scores(log)[0]["monitor_outages"] >= 1
    assert channel_module.MONITOR_ERRORS.labels("register")._value.get() > before


def test_inspect_eval_cli_finds_the_tasks_through_the_entry_point(tmp_path: Path) -> None:
    """``inspect eval runaway_monitor/<task>`` from elsewhere, the openai provider speaking
    Chat Completions to a local server (``responses_api=false``), offline."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "vs_sequential.py"), "--serve-model", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDIS_URL")}
        env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="test-key")
        inspect = Path(sys.executable).with_name("inspect")
        cmd = [
            str(inspect),
            "eval",
            "runaway_monitor/balancing_unbounded_objectives",
            "--model",
            "openai/balanced",
            "-M",
            "responses_api=false",
            "-T",
            "steps=4",
            "-T",
            "trials=2",
            "-T",
            "hint=false",
            "--log-dir",
            str(tmp_path / "logs"),
            "--display",
            "none",
        ]
        done = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
        )
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(10)
    (path,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(path))
    assert (
        log.status == "success"
        and log.eval.task == "runaway_monitor/balancing_unbounded_objectives"
    )
    assert [s.id for s in log.samples] == ["seed-1", "seed-2"]
    system = log.samples[0].messages[0].text
    assert "harvest up to 10 units" in system and "beneficial to balance" not in system


def test_the_registry_names_every_task_after_the_package() -> None:
    from inspect_ai._util.registry import registry_info

    names = {
        registry_info(getattr(registry, n)).name
        for n in (
            "sustainability",
            "homeostasis",
            "multiobjective_homeostasis",
            "multiobjective_homeostasis_shocks",
            "balancing_unbounded_objectives",
            "balancing_noise",
        )
    }
    assert all(n.startswith("runaway_monitor/") for n in names) and len(names) == 6
    wrappers = {registry_info(w).name for w in (registry.monitored, registry.monitored_agent)}
    assert wrappers == {"runaway_monitor/monitored", "runaway_monitor/monitored_agent"}


def test_bad_task_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="hint"):
        bioblue_task("homeostasis", hint=True)
    with pytest.raises(ValueError, match="unknown mitigation"):
        bioblue_task("homeostasis", mitigation="no-such-thing")
    with pytest.raises(ValueError, match="rolling-summary-5"):
        bioblue_task("homeostasis", mitigation="rolling-summary-5")


def test_importing_the_core_never_imports_inspect_ai() -> None:
    code = (
        "import sys, monitor.cli, monitor.client, monitor.pipeline, workers.runner, "
        "detectors.service, schemas.events\n"
        "assert 'inspect_ai' not in sys.modules, 'the core imported inspect_ai'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_an_old_inspect_ai_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.integrations.inspect as integration

    monkeypatch.setattr(integration.metadata, "version", lambda name: "0.3.100")
    with pytest.raises(ImportError, match=r"inspect-ai>=0\.3\.189.*found 0\.3\.100"):
        integration.check_inspect_ai()


@solver
def three_turns() -> Solver:
    """A plain multi-turn solver: three model calls, a user nudge between them."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        for _ in range(3):
            state = await generate(state)
            state.messages.append(ChatMessageUser(content="And now?"))
        return state

    return solve


async def test_the_recovery_wrapper_reports_each_model_call_of_any_solver_once(
    drifting_server: FakeModelServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    channel_module.configure(monitor_settings.model_copy(update={"step_timeout_s": 0.3}))
    drifting_server.default = text("42")
    task = Task(
        dataset=[Sample(input="Pick a number.", id="s1")], solver=registry.monitored(three_turns())
    )
    log = await run_eval(task, drifting_server, tmp_path)
    seen = await steps_in_streams(redis, monitor_settings)
    assert seen == {f"inspect-{log.samples[0].uuid}": [1, 2, 3]}  # the hooks added none
    link = log.samples[0].store["runaway_monitor:link"]
    assert link["verdicts"] + link["verdict_timeouts"] == 3 and link["monitor_outages"] == 0


async def test_the_hooks_stream_each_model_call_of_anybodys_eval_once(
    drifting_server: FakeModelServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    drifting_server.default = text("42")
    task = Task(dataset=[Sample(input="Pick a number.", id="s1")], solver=three_turns())
    log = await run_eval(task, drifting_server, tmp_path)
    assert await steps_in_streams(redis, monitor_settings) == {
        f"inspect-{log.samples[0].uuid}": [1, 2, 3]
    }
    events = []
    for stream in monitor_settings.keys.all_steps():
        events += [decode(f) for _, f in await redis.xrange(stream)]
    assert [e.text for e in events if e.kind == "step"] == ["42", "42", "42"]
    assert [e.kind for e in events][-1] == "episode_finished"


@tool
def add() -> Tool:
    async def execute(x: int, y: int) -> int:
        """Add two numbers.

        Args:
          x: the first
          y: the second
        """
        return x + y

    return execute


TOOL_CALL = {
    "id": "chatcmpl-tool",
    "object": "chat.completion",
    "created": 0,
    "model": "drift",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"x": 1, "y": 2}'},
                    }
                ],
            },
        }
    ],
}


async def test_the_approver_reports_each_tool_call_and_approves_on_continue(
    drifting_server: FakeModelServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    channel_module.configure(monitor_settings.model_copy(update={"inspect_hooks": False}))
    drifting_server.push(raw(json.dumps(TOOL_CALL)), text("3"))
    task = Task(
        dataset=[Sample(input="What is 1 + 2?", id="s1")], solver=[use_tools(add()), generate()]
    )
    policy = [ApprovalPolicy(approver=registry.runaway_approver(), tools="*")]
    log = await run_eval(task, drifting_server, tmp_path, approval=policy)
    (sample,) = log.samples
    approvals = [e for e in sample.events if e.event == "approval"]
    assert [(a.call.function, a.decision) for a in approvals] == [("add", "approve")]
    assert [e.result for e in sample.events if e.event == "tool"] == ["3"]  # the call ran
    steps = []
    for stream in monitor_settings.keys.all_steps():
        steps += [e for e in (decode(f) for _, f in await redis.xrange(stream)) if e.kind == "step"]
    assert [(e.step, [(c.name, c.arguments) for c in e.tool_calls]) for e in steps] == [
        (1, [("add", {"x": 1, "y": 2})])
    ]


async def test_the_hooks_stream_a_tool_call_and_its_result_as_steps(
    drifting_server: FakeModelServer,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    """Anybody's tool-using eval, hooks on: the model's tool call is a step, the tool's
    run (the same call, with its result) the next one, the model's answer the last."""
    drifting_server.push(tool_calls(("add", {"x": 1, "y": 2})), text("3"))
    task = Task(
        dataset=[Sample(input="What is 1 + 2?", id="s1")], solver=[use_tools(add()), generate()]
    )
    log = await run_eval(task, drifting_server, tmp_path)
    events = await stream_events(redis, monitor_settings)
    assert {e.episode_id for e in events} == {f"inspect-{log.samples[0].uuid}"}
    steps = [e for e in events if e.kind == "step"]
    assert [
        (e.step, e.text, [(c.name, c.arguments, c.result) for c in e.tool_calls]) for e in steps
    ] == [
        (1, None, [("add", {"x": 1, "y": 2}, None)]),
        (2, None, [("add", {"x": 1, "y": 2}, "3")]),
        (3, "3", []),
    ]
    assert steps[0].tool_calls[0].id == steps[1].tool_calls[0].id  # the call, then its run
    assert (events[-1].kind, events[-1].step) == ("episode_finished", 3)


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def _inspect_rows(client: Any) -> list[dict[str, Any]]:
    resp = await client.get("/v1/episodes", params={"source": "inspect"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def _seen_while_held(
    client: Any, server: FakeModelServer, running: "asyncio.Task[Any]"
) -> dict[str, Any]:
    """What the sidecar shows while the eval waits on its third model call (held)."""
    await wait_for(
        lambda: running.done() or len(chat_requests(server)) == 3, 60, "the third model call"
    )
    assert not running.done(), "the eval ended before its held model call"

    async def scored() -> list[dict[str, Any]]:
        rows = await _inspect_rows(client)
        return rows if rows and rows[0]["last_step"] == 2 else []

    (row,) = await wait_for(scored, 30, "the listing to show both steps, scored")

    async def counted() -> bool:
        text = await (await client.get("/metrics")).text()
        return _metric(text, "runaway_episode_steps_total", environment="custom") == 2

    await wait_for(counted, 30, "/metrics to count the eval's two steps")
    assert not running.done()  # all of it seen while the eval runs
    return row


async def test_the_sidecar_lists_and_counts_an_inspect_eval_while_it_runs(
    drifting_server: FakeModelServer,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    """A sidecar (with its detector) and anybody's eval, hooks on, its third model call held
    by the model server: meanwhile ``GET /v1/episodes`` lists the sample as an inspect
    episode with its two steps accepted and scored, and ``/metrics`` counts them."""
    release = asyncio.Event()
    drifting_server.push(text("42"), text("42"), held(release, text("42")))
    task = Task(dataset=[Sample(input="Pick a number.", id="s1")], solver=three_turns())
    async with api_client(monitor_settings) as client:
        await wait_ready(client)  # the feed follows the streams before the eval starts
        running = asyncio.create_task(run_eval(task, drifting_server, tmp_path))
        try:
            row = await _seen_while_held(client, drifting_server, running)
        finally:
            release.set()
            log = await asyncio.wait_for(running, 120)
        assert row["episode_id"] == f"inspect-{log.samples[0].uuid}"
        assert (row["source"], row["status"], row["accepted_step"]) == ("inspect", "active", 2)
        assert row["model"].endswith("drift")
        (done,) = await _inspect_rows(client)
        assert (done["status"], done["accepted_step"]) == ("finished", 3)


REMINDER = "Add no more numbers; submit the answer."


def reset_at_step_2(step: StepEvent) -> list[Any]:
    """Every step safe (its own savepoint) but step 2: reset to step 1's savepoint."""
    if step.step != 2:
        return [_answer(step, "continue", savepoint_step=step.step, runaway_index=0.1)]
    command = RecoveryCommand(
        episode_id=step.episode_id,
        step=2,
        step_ts=step.ts,
        command_id="reset-2",
        savepoint_step=1,
        reminder=REMINDER,
    )
    return [command, _answer(step, "reset", savepoint_step=1, runaway_index=0.9)]


async def test_the_agent_wrapper_resets_a_react_agents_messages_to_the_savepoint(
    drifting_server: FakeModelServer,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    """Inspect's react() agent under monitored_agent, the monitor's verdicts scripted (step
    2: reset to step 1): the next request is step 1's context (its tool result included)
    plus the reminder, step 2's call and result gone; each model call is one step (the
    hooks, on, add none) and the detectors are told of the recovery."""
    channel_module.configure(monitor_settings.model_copy(update={"step_timeout_s": 30}))
    drifting_server.push(
        tool_calls(("add", {"x": 1, "y": 2})),
        tool_calls(("add", {"x": 2, "y": 3})),
        tool_calls(("add", {"x": 3, "y": 4})),
        tool_calls(("submit", {"answer": "7"})),
    )
    agent = registry.monitored_agent(react(tools=[add()]))
    task = Task(dataset=[Sample(input="What is 1 + 2?", id="s1")], solver=agent)
    async with answering(redis, monitor_settings, reset_at_step_2):
        log = await run_eval(task, drifting_server, tmp_path)
    requests = [r.messages for r in chat_requests(drifting_server)]
    assert len(requests) == 4
    assert [m["role"] for m in requests[1]] == ["system", "user", "assistant", "tool"]
    assert requests[2] == [*requests[1], {"role": "user", "content": REMINDER}]
    assert len(requests[3]) == len(requests[2]) + 2  # step 3's call and result
    (sample,) = log.samples
    episode = f"inspect-{sample.uuid}"
    assert await steps_in_streams(redis, monitor_settings) == {episode: [1, 2, 3, 4]}
    applied = [
        e for e in await stream_events(redis, monitor_settings) if e.kind == "recovery_applied"
    ]
    assert [(e.step, e.savepoint_step, e.messages_dropped) for e in applied] == [(2, 1, 2)]
    link = sample.store["runaway_monitor:link"]
    assert (link["verdicts"], link["verdict_timeouts"], link["recoveries"]) == (4, 0, [2])
    calls = [
        c.arguments for m in sample.messages if m.role == "assistant" for c in m.tool_calls or []
    ]
    assert {"x": 2, "y": 3} not in calls and {"x": 3, "y": 4} in calls


def stop_at_step_1(step: StepEvent) -> list[Any]:
    return [_answer(step, "stop", runaway_index=1.0, cause="loop", reason="scripted stop")]


async def test_the_agent_wrapper_ends_agent_and_sample_on_stop_before_the_tools_run(
    drifting_server: FakeModelServer,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    """A stop for the agent's first answer: its tool call never runs, the agent returns
    with that answer, and the sample ends (the solver after the agent never calls)."""
    channel_module.configure(monitor_settings.model_copy(update={"step_timeout_s": 30}))
    drifting_server.default = tool_calls(("add", {"x": 1, "y": 2}))  # adds on, unless stopped
    agent = registry.monitored_agent(react(tools=[add()]))
    task = Task(
        dataset=[Sample(input="What is 1 + 2?", id="s1")], solver=[as_solver(agent), generate()]
    )
    async with answering(redis, monitor_settings, stop_at_step_1):
        log = await run_eval(task, drifting_server, tmp_path, message_limit=12)
    assert len(chat_requests(drifting_server)) == 1
    (sample,) = log.samples
    assert not [e for e in sample.events if e.event == "tool"]
    last = sample.messages[-1]
    assert last.role == "assistant" and [c.function for c in last.tool_calls] == ["add"]
    assert sample.store["runaway_monitor:link"]["verdicts"] == 1


async def test_verdicts_act_on_task_messages_once_and_map_to_approvals(
    monitor_settings: Settings, redis: Any
) -> None:
    state = SimpleNamespace(messages=[ChatMessageSystem(content="sys")])
    target = MessagesTarget(state)  # type: ignore[arg-type]
    for step in (1, 2, 3):
        state.messages += [
            ChatMessageUser(content=f"q{step}"),
            ChatMessageAssistant(content=f"a{step}"),
        ]
        target.after_step(step)
    episode = open_episode("unit-sample", {}, {"source": "inspect"})
    link = EpisodeLink(channel_module.channel(), episode, own=True)
    common = {"episode_id": episode.episode_id, "step": 3, "step_ts": 0.0}
    verdict = Verdict(**common, verdict="reset", savepoint_step=1, runaway_index=0.9)
    cmd = RecoveryCommand(**common, command_id="c-1", savepoint_step=1, reminder="Balance A and B.")
    assert await link.apply((verdict, cmd), target) == "reset"
    assert [m.text for m in state.messages] == ["sys", "q1", "a1", "Balance A and B."]
    assert await link.apply((verdict, cmd), target) == "continue"  # once per command id
    assert link.recoveries == [3]
    applied = [
        decode(f)
        for _, f in await redis.xrange(
            monitor_settings.keys.steps(monitor_settings.keys.shard_of(episode.episode_id))
        )
    ]
    assert [e.kind for e in applied] == ["recovery_applied"]  # the detectors re-arm on it
    remind = Verdict(**common, verdict="remind", runaway_index=0.4, reminder="Mind B.")
    assert await link.apply((remind, None), target) == "remind"
    assert state.messages[-1].text == "Mind B."
    blocked = Verdict(
        **common,
        verdict="block",
        runaway_index=0.5,
        cause="loop",
        reason="the same tool call 3 times",
    )
    assert decision(blocked).decision == "reject"
    assert decision(blocked).explanation == "the same tool call 3 times"
    assert decision(Verdict(**common, verdict="stop", runaway_index=1.0)).decision == "terminate"
    assert decision(verdict).decision == "approve" and decision(None).decision == "approve"


@pytest.mark.smollm
@pytest.mark.timeout(300)
async def test_a_real_small_model_is_re_asked_and_every_played_step_streamed_once(
    smollm_server: LlamaServer,
    detector: DetectorService,
    redis: Any,
    tmp_path: Path,
    monitor_settings: Settings,
) -> None:
    """SmolLM2-135M through Inspect's openai-api provider, hooks and recovery on: most of
    its answers are prose, not an integer. Each is asked again with the same context and
    never enters the history; a step it never answers ends the sample (an error, as in
    the benchmark) and the steps played are still each in the streams once."""
    task = bioblue_task("homeostasis", steps=2, trials=1, monitor=True)
    logs = await eval_async(
        task,
        model="openai-api/local/smollm2",
        model_base_url=smollm_server.base_url,
        log_dir=str(tmp_path),
        temperature=0.7,
        max_tokens=12,
        fail_on_error=False,
    )
    (sample,) = read_eval_log(logs[0].location).samples
    records = sample.store.get("runaway_monitor:steps", [])
    played = [r["step"] for r in records]
    assert played == list(range(1, len(played) + 1))
    assert (sample.error is None) == (len(played) == 2)
    calls = [e for e in sample.events if e.event == "model"]
    invalid = sum(r["invalid_answers"] for r in records) + (11 if sample.error else 0)
    assert len(calls) == len(played) + invalid and invalid >= 1
    for before, after in itertools.pairwise(calls):  # a re-ask repeats the context exactly
        same_step = len(after.input) == len(before.input)
        assert same_step or len(after.input) == len(before.input) + 2
    env = create_environment("homeostasis")
    answers = [m.text for m in sample.messages if m.role == "assistant"]
    assert len(answers) == len(played) and all(env.parse_action(a) for a in answers)
    seen = await steps_in_streams(redis, monitor_settings)
    assert seen == {f"inspect-{sample.uuid}": played}
    if played:
        assert sample.store["runaway_monitor:link"]["verdicts"] == len(played)
