"""End to end with a real Prometheus (Debian package ``prometheus``; ``.ci/run`` installs
it): ``promtool check config`` and ``check rules`` pass on deploy/'s files, Prometheus
scrapes the live service on loopback, and every PromQL expression of the Grafana
dashboard and the alert rules evaluates successfully against that data."""

import asyncio
import os
import shutil

import aiohttp
import pytest
import yaml

from tests.api_helpers import api_client, mo_step, register
from tests.serve_helpers import free_port
from tests.test_deploy_files import DEPLOY, alert_exprs, dashboard_exprs
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(  # never skipped in CI: .ci/run installs the package
    not (PROMETHEUS and PROMTOOL) and os.environ.get("CI") != "true",
    reason="Debian package prometheus (prometheus, promtool)",
)
FLIPPING = "balancing-unbounded-objectives-no-hint_gpt-4o-mini_2025_02_12_22_30_11_916997.tsv"
# expressions that must have data once the service has served steps
MUST_HAVE_DATA = (
    "sum(rate(runaway_sidecar_steps_total[1m]))",
    "sum by (le) (increase(runaway_runaway_index_bucket[1m]))",
    "sum by (group) (runaway_consumer_group_lag)",
    "max(runaway_detectors_live)",
)


async def _run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_promtool_checks_deploy_files():
    code, out = await _run(PROMTOOL, "check", "config", str(DEPLOY / "prometheus/prometheus.yml"))
    assert code == 0, out
    code, out = await _run(PROMTOOL, "check", "rules", str(DEPLOY / "prometheus/alerts.yml"))
    assert code == 0, out


async def _traffic(client, steps: int) -> None:
    for _ in range(2):
        labels = {"model": "scripted", "mitigation": "none"}
        ep = await register(client, {"environment": "multiobjective-homeostasis", "labels": labels})
        for step in range(1, steps + 1):
            assert (await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(step))).status == 200
    spec, events = events_from_recording(read_tsv(BUNDLED_DIR / FLIPPING))
    ep = await register(
        client,
        {
            "environment": spec.environment,
            "env_options": spec.env_options,
            "labels": {"model": "gpt-4o-mini"},
        },
    )
    for ev in events[:steps]:
        body = {"step": ev.step, "observation": ev.observation, "action": ev.action}
        assert (await client.post(f"/v1/episodes/{ep}/steps", json=body)).status == 200


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> dict:
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as resp:
        return await resp.json()


async def test_prometheus_scrapes_and_every_expression_evaluates(settings, redis, tmp_path):
    async with api_client(settings, step_timeout_s=10) as client:
        target = f"127.0.0.1:{client.server.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus/alerts.yml")],
            "scrape_configs": [
                # the in-process detector's metrics are served by the same /metrics
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job in ("monitor", "detector")
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (tmp_path / "prometheus.log").open("wb")
        prom = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=log,
        )
        try:
            await _traffic(client, 8)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                for _ in range(150):  # until two scrapes have seen the traffic
                    try:
                        got = await _query(session, base, 'count_over_time(up{job="monitor"}[1m])')
                        if (
                            got["data"]["result"]
                            and float(got["data"]["result"][0]["value"][1]) >= 2
                        ):
                            break
                    except (aiohttp.ClientError, KeyError, IndexError):
                        pass
                    assert prom.returncode is None, (tmp_path / "prometheus.log").read_text()
                    await asyncio.sleep(0.2)
                await _traffic(client, 6)  # more after the first scrapes, so rates move
                await asyncio.sleep(3)
                failures = []
                for expr in dashboard_exprs() + alert_exprs():
                    got = await _query(session, base, expr)
                    if got.get("status") != "success":
                        failures.append((expr, got.get("error")))
                assert failures == []
                for expr in MUST_HAVE_DATA:
                    got = await _query(session, base, expr)
                    assert got["data"]["result"], f"no data for {expr}"
                async with session.get(f"{base}/api/v1/rules") as resp:
                    rules = (await resp.json())["data"]["groups"][0]["rules"]
                assert len(rules) == len(alert_exprs())
                assert all(r["health"] != "err" for r in rules), rules
        finally:
            prom.terminate()
            await asyncio.wait_for(prom.wait(), 20)
            log.close()
