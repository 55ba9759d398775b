"""Zero-code monitoring end to end: a real OpenAI Agents SDK agent, instrumented with
OpenInference and the standard OTLP/HTTP (protobuf) exporter, runs a tool loop against the
scripted tool-calling model server and exports its traces to a real sidecar (Redis, an
in-process detector). Its episode, keyed by the run's session id, gets the ``loop``
flag; the verdicts show in metrics and reach the verdict sink (the export-back hook)."""

import asyncio
import os
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from monitor.api import create_app
from monitor.api.routes_otlp import add_verdict_sink
from tests.fakes.model_server import text, tool_calls

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "otlp_openai_agents.py"
LOOPS = 6  # the same call again and again: the loop detector flags at 3 (DetectorConfig)


async def _poll(client: TestClient, path: str, done, deadline_s: float = 30.0) -> dict:
    deadline = asyncio.get_running_loop().time() + deadline_s
    body: dict = {}
    while asyncio.get_running_loop().time() < deadline:
        resp = await client.get(path)
        if resp.status == 200:
            body = await resp.json()
            if done(body):
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never reached the condition; last: {body}")


async def test_openai_agents_tool_loop_over_otlp_gets_the_loop_flag(
    settings, redis, fake_model_server, tmp_path
):
    for _ in range(LOOPS):
        fake_model_server.push(tool_calls(("check_inventory", {"item": "widget"})))
    fake_model_server.push(text("We have 3 widgets."))
    app = create_app(settings, with_detector=True)
    seen: list[dict] = []
    add_verdict_sink(app, seen.append)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        endpoint = str(client.make_url("/v1/traces"))
        env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), "--base-url", fake_model_server.openai_base_url,
            "--conversation", "inventory-7", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, out.decode()[-3000:]
        assert b"We have 3 widgets." in out
        episode = await _poll(
            client, "/v1/episodes/inventory-7",
            lambda b: b["accepted_step"] == LOOPS + 1 and len(b["history"]) == LOOPS + 1,
        )  # fmt: skip
        metrics = await (await client.get("/metrics")).text()
    assert episode["source"] == "otlp" and "loop" in episode["flags"]
    assert any(f["flag"] == "loop" for f in episode["flips"])
    assert 'runaway_otlp_spans_total{outcome="step"} 7.0' in metrics
    loop_flips = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("runaway_episode_flips_total{") and 'flag="loop"' in line
    ]
    assert sum(loop_flips) >= 1, "the loop flip is counted in the metrics"
    assert [v["step"] for v in seen] == list(range(1, LOOPS + 2))
    assert any("loop" in v["flags"] for v in seen)
