"""The in-process detector inside the sidecar is supervised (issue 20, item 15): a
detector that fails is logged, restarted with backoff and counted, and /healthz fails
while it cannot be kept running. The fault is injected into the real DetectorService."""

import asyncio
import logging

from detectors.service import DetectorService
from tests.api_helpers import api_client, mo_step, register


def _restarts(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('runaway_sidecar_task_restarts_total{task="detector"}'):
            return float(line.split()[-1])
    raise AssertionError("no restart counter")


async def _poll(condition, limit_s: float = 10) -> None:
    for _ in range(int(limit_s / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


async def test_a_failing_detector_is_restarted_and_steps_get_its_verdicts(
    settings, redis, monkeypatch, caplog
):
    real_run, failures = DetectorService.run, []

    async def flaky(self, stop):
        if len(failures) < 2:
            failures.append(1)
            raise KeyError("a bug in the detector")
        await real_run(self, stop)

    monkeypatch.setattr(DetectorService, "run", flaky)
    caplog.set_level(logging.ERROR, "monitor.api.supervise")
    async with api_client(settings, step_timeout_s=5) as client:
        ep = await register(client)
        got = await (await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))).json()
        assert got["fail_mode"] is None, got  # answered by the restarted detector
        assert _restarts(await (await client.get("/metrics")).text()) == 2
        assert (await client.get("/healthz")).status == 200
    assert sum("detector failed; restarting it" in r.message for r in caplog.records) == 2
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


async def test_healthz_fails_when_the_detector_cannot_be_kept_running(settings, redis, monkeypatch):
    async def broken(self, stop):
        raise RuntimeError("always")

    monkeypatch.setattr(DetectorService, "run", broken)
    async with api_client(settings) as client:

        async def failing() -> bool:
            return (await client.get("/healthz")).status == 503

        await _poll(failing)
        body = await (await client.get("/healthz")).json()
        assert "detector" in body["problems"]
        assert _restarts(await (await client.get("/metrics")).text()) >= 5
