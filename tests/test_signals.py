"""SIGINT/SIGTERM end every long-running command (issue 20, item 11): the first signal
stops it gracefully, with the command's documented exit status (README, "Stopping"), and a
second one while it is still stopping ends it at once with 128 + the signal's number.

Real processes (``python -m monitor <command>``) on the tests' Redis under the test's own
key prefix, each caught with work in flight: an episode whose model call hangs (worker,
run, experiment: a fake model server that never answers), a step waiting for a verdict
that no detector gives (serve), a Redis that has stopped answering (detector). With a
short ``RUNAWAY_SHUTDOWN_GRACE_S`` the first signal ends the command; with a long one it is
still stopping when the second comes. ``demo`` is in tests/test_commands_redis_death.py.
"""

import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from monitor.client import AsyncMonitor
from schemas.keys import Keys
from schemas.settings import Settings
from tests.fakes.model_server import FakeModelServer, sleep
from tests.pipeline_helpers import process_env, spec, start_process, stream_events
from tests.serve_helpers import free_port
from tests.waiting import Condition, stays, wait_for
from workers.jobs import submit_jobs

SHORT_GRACE_S = "0.3"  # the first signal: episodes and requests in flight get this long
LONG_GRACE_S = "120"  # ... or far longer than the test: still stopping at the second one
START_S = 60  # python start-up and imports, on a busy machine
STOP_S = 15  # a graceful stop after the first signal
AT_ONCE_S = 3  # the second signal


@dataclass
class Command:
    """A command to signal: its name and arguments, environment, when it has work in
    flight, its exit status after a graceful stop, and the signal its user sends."""

    args: list[str]
    env: dict[str, str]
    in_flight: Condition
    graceful_status: int
    sig: signal.Signals


@dataclass
class Context:
    """What a command's set-up needs: the test's Redis and key prefix, the model server,
    the silent port, a directory, and whether the shutdown grace is long."""

    settings: Settings
    redis: aioredis.Redis
    model: FakeModelServer
    silent_redis: str
    tmp_path: Path
    slow: bool
    log: Path = field(init=False)
    steps: list["StepInFlight"] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = self.tmp_path / "command.err"

    def env(self, **extra: str) -> dict[str, str]:
        grace = LONG_GRACE_S if self.slow else SHORT_GRACE_S
        return process_env(self.settings, shutdown_grace_s=grace, **extra)

    def model_called(self) -> bool:
        return bool(self.model.requests)

    def logged(self, text: str) -> Callable[[], bool]:
        return lambda: self.log.exists() and text in self.log.read_text()


class StepInFlight:
    """Once ``serve`` says it is serving: register an episode and post its first step,
    which waits for a verdict; true once that step is on its steps stream."""

    def __init__(self, url: str, ready: Callable[[], bool], redis: aioredis.Redis, keys: Keys):
        self.url, self.ready, self.redis, self.keys = url, ready, redis, keys
        self.task: asyncio.Task[None] | None = None

    async def __call__(self) -> bool:
        if self.task is None:
            if not self.ready():
                return False
            self.task = asyncio.create_task(self._post())
        if self.task.done():
            self.task.result()  # it failed: say why
        for stream in self.keys.all_steps():
            if any(e.kind == "step" for e in await stream_events(self.redis, stream)):
                return True
        return False

    async def _post(self) -> None:
        async with AsyncMonitor(self.url, timeout_s=300) as mon:
            episode = await mon.register(
                objectives=[{"name": "x", "kind": "homeostatic", "target": 10, "band": 2}]
            )
            await mon.step(episode, 1, {"x": 10}, {"x": 0})

    async def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def _model_agent(ctx: Context) -> list[str]:
    return ["--model", "m", "--base-url", ctx.model.openai_base_url]


async def _worker(ctx: Context) -> Command:
    job = spec(
        "sig-worker",
        "homeostasis",
        "openai-compatible",
        steps=50,
        model="m",
        base_url=ctx.model.openai_base_url,
    )
    await submit_jobs(ctx.redis, ctx.settings.keys, [job])
    return Command(["worker"], ctx.env(), ctx.model_called, 0, signal.SIGTERM)


async def _run(ctx: Context) -> Command:
    args = ["run", "--env", "homeostasis", "--agent", "openai-compatible", *_model_agent(ctx)]
    args += ["--steps", "50", "--json"]
    # interrupted: the summary says so and the status is 1
    return Command(args, ctx.env(), ctx.model_called, 1, signal.SIGINT)


async def _experiment(ctx: Context) -> Command:
    config = ctx.tmp_path / "signals.yaml"
    model = {"kind": "openai-compatible", "model": "m", "base_url": ctx.model.openai_base_url}
    grid = {
        "name": "signals",
        "models": [model],
        "environments": ["homeostasis"],
        "mitigations": ["none"],
        "seeds": [1],
        "steps": 50,
        "concurrency": 1,
    }
    config.write_text(json.dumps(grid))  # JSON is YAML
    args = ["experiment", str(config), "--out", str(ctx.tmp_path / "results"), "--json"]
    # interrupted: 130, and the same command resumes it
    return Command(args, ctx.env(), ctx.model_called, 130, signal.SIGINT)


async def _serve(ctx: Context) -> Command:
    port = free_port()  # REDIS_URL and no --with-detector: nobody gives the step a verdict
    step = StepInFlight(
        f"http://127.0.0.1:{port}", ctx.logged("serving on"), ctx.redis, ctx.settings.keys
    )
    ctx.steps.append(step)
    env = ctx.env(step_timeout_s="300")
    return Command(["serve", "--port", str(port)], env, step, 0, signal.SIGTERM)


async def _detector(ctx: Context) -> Command:
    env = ctx.env()
    if ctx.slow:  # its Redis stopped answering: every call hangs, also those of stopping
        env["REDIS_URL"] = ctx.silent_redis
    shards = f"over {ctx.settings.shards} shards"
    return Command(["detector"], env, ctx.logged(shards), 0, signal.SIGTERM)


COMMANDS: dict[str, Callable[[Context], Awaitable[Command]]] = {
    "worker": _worker,
    "serve": _serve,
    "detector": _detector,
    "run": _run,
    "experiment": _experiment,
}


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections (into the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"redis://127.0.0.1:{s.getsockname()[1]}"


Process = asyncio.subprocess.Process
Start = Callable[[str, bool], Awaitable[tuple[Command, Process, Path]]]


@pytest.fixture
async def start(
    settings: Settings,
    redis: aioredis.Redis,
    fake_model_server: FakeModelServer,
    silent_redis: str,
    tmp_path: Path,
) -> AsyncIterator[Start]:
    """Start a command and wait until it has work in flight; ends whatever is left after."""
    fake_model_server.default = sleep(600)  # until the server closes
    procs: list[Process] = []
    contexts: list[Context] = []

    async def launch(name: str, slow: bool) -> tuple[Command, Process, Path]:
        ctx = Context(settings, redis, fake_model_server, silent_redis, tmp_path, slow)
        contexts.append(ctx)
        command = await COMMANDS[name](ctx)
        proc = await start_process(name, command.env, *command.args[1:], log=ctx.log)
        procs.append(proc)

        async def working() -> bool:
            assert proc.returncode is None, ctx.log.read_text()[-2000:]
            done = command.in_flight()
            return bool(await done if asyncio.iscoroutine(done) else done)

        await wait_for(working, START_S, f"{name} to have work in flight")
        return command, proc, ctx.log

    yield launch
    for proc in procs:  # a test that failed half-way
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for ctx in contexts:
        for step in ctx.steps:
            await step.cancel()
    # run and experiment keep their keys under <prefix>-<run id>: gone only when they end
    keys = [k async for k in redis.scan_iter(match=f"{settings.key_prefix}-*", count=1000)]
    if keys:
        await redis.unlink(*keys)


def _exited(proc: Process) -> Callable[[], bool]:
    return lambda: proc.returncode is not None


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_one_signal_stops_the_command_gracefully(name: str, start: Start) -> None:
    command, proc, log = await start(name, False)
    proc.send_signal(command.sig)
    await wait_for(_exited(proc), STOP_S, f"{name} to stop after {command.sig.name}")
    err = log.read_text()
    assert proc.returncode == command.graceful_status, err[-2000:]
    assert f"{command.sig.name}: stopping" in err
    assert "again: exiting now" not in err and "stopped after a signal" not in err, err[-2000:]


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_a_second_signal_while_stopping_ends_the_command_at_once(
    name: str, start: Start
) -> None:
    command, proc, log = await start(name, True)
    sig = command.sig
    proc.send_signal(sig)
    await wait_for(lambda: f"{sig.name}: stopping" in log.read_text(), 10, "the first signal")
    # still stopping: what is in flight holds it (the grace outlasts the test)
    await stays(lambda: proc.returncode is None, 1.0, f"{name} stopping after one {sig.name}")
    sent = time.monotonic()
    proc.send_signal(sig)
    await wait_for(_exited(proc), AT_ONCE_S, f"{name} to exit after a second {sig.name}")
    took = time.monotonic() - sent
    err = log.read_text()
    assert proc.returncode == 128 + sig.value, err[-2000:]
    assert f"{sig.name} again: exiting now" in err
    print(f"{name}: exited {took:.2f} s after the second {sig.name}")
