"""The integrations' examples run as documented, against the real sidecar and detector
(in-process, real Redis) and the scripted model server: every model call reaches the
monitor as a step of a sustainability episode and gets the detector's verdict."""

import asyncio
import contextlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from schemas.settings import Settings
from tests.api_helpers import api_client
from tests.fakes.model_server import FakeModelServer, text, tool_calls

pytestmark = pytest.mark.usefixtures("redis")  # the real sidecar's keys are removed after

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str) -> ModuleType:
    """The example as ``python examples/<name>.py`` runs it: its folder on ``sys.path``
    (for the ``pond`` module the fishing examples share)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main_closing_its_loop(example: ModuleType, argv: list[str]) -> int:
    """``example.main(argv)`` in this thread, then close the event loop it left set here.

    Once an Inspect eval ran in this session, inspect-ai's nest_asyncio2 has replaced
    ``asyncio.run`` with one that keeps its loop open (an unclosed loop and its two
    self-pipe sockets, reported at the end of the session)."""
    try:
        return int(example.main(argv))
    finally:
        with contextlib.suppress(RuntimeError):  # no loop was left
            loop = asyncio.get_event_loop_policy().get_event_loop()
            if not loop.is_running():
                loop.close()
        asyncio.set_event_loop(None)


@pytest.mark.parametrize("name", ["langgraph_fishing", "openai_agents_fishing"])
async def test_example_reports_each_model_call_to_the_real_sidecar(
    name: str,
    settings: Settings,
    fake_model_server: FakeModelServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_model_server.push(
        tool_calls(("harvest", {"amount": 2})),
        tool_calls(("harvest", {"amount": 3})),
        text("The pond is doing fine."),
    )
    example = _example(name)
    async with api_client(settings, step_timeout_s=10) as client:
        url = str(client.make_url("/")).rstrip("/")
        argv = ["--monitor", url, "--base-url", fake_model_server.openai_base_url, "--model", "m"]
        assert await asyncio.to_thread(_main_closing_its_loop, example, argv) == 0
        out = capsys.readouterr().out
        found = re.search(r"episode (\S+): 3 steps", out)
        assert found, out
        body = await (await client.get(f"/v1/episodes/{found.group(1)}")).json()
    assert "The pond is doing fine." in out
    assert body["environment"] == "sustainability" and body["status"] == "finished"
    assert body["accepted_step"] == 3
    assert [h["step"] for h in sorted(body["history"], key=lambda h: h["step"])] == [1, 2, 3]
    assert all(h["verdict"] == "continue" for h in body["history"])
