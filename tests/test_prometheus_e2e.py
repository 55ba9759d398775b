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
from tests.deploy_helpers import DEPLOY, alert_exprs, dashboard_exprs
from tests.serve_helpers import free_port
from tests.waiting import wait_for
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(  # never skipped in CI: .ci/run installs the package
    not (PROMETHEUS and PROMTOOL) and os.environ.get("CI") != "true",
    reason="Debian package prometheus (prometheus, promtool)",
)
# flips after a balanced start (onset 22, detected 27), so the runaway flag gets a reset:
# a flip from step 1 has no safe savepoint and gets the remind fallback instead
FLIPPING = "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_32_56_891497.tsv"
FLIP_DETECTED = 27
# expressions that must have data once the service has served steps
MUST_HAVE_DATA = (
    "sum(rate(runaway_sidecar_steps_total[1m]))",
    "sum by (le) (increase(runaway_runaway_index_bucket[1m]))",
    "sum by (group) (runaway_consumer_group_lag)",
    "max(runaway_detectors_live)",
)
# after _traffic (a flipping trial is reset once) these must be >= 1, with these labels
MUST_COUNT = (
    ('sum(runaway_episode_verdicts_total{action="reset", cause="runaway"})', {}),
    ('sum(runaway_flips_total{flag="runaway"})', {}),
    ("max by (mode) (runaway_sidecar_fail_mode) == 1", {"mode": "closed"}),  # a panel's
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
    for ev in events[: max(steps, FLIP_DETECTED)]:
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

                async def scrapes_seen(n: int) -> bool:
                    assert prom.returncode is None, (tmp_path / "prometheus.log").read_text()
                    try:
                        got = await _query(session, base, 'count_over_time(up{job="monitor"}[1m])')
                        return float(got["data"]["result"][0]["value"][1]) >= n
                    except (aiohttp.ClientError, KeyError, IndexError):
                        return False  # not up yet, or no scrape yet

                await wait_for(lambda: scrapes_seen(2), 30, "two scrapes of the service")
                await _traffic(client, 6)  # more after the first scrapes, so rates move

                async def all_have_data() -> bool:
                    for expr in MUST_HAVE_DATA:
                        if not (await _query(session, base, expr))["data"]["result"]:
                            return False
                    return True

                await wait_for(all_have_data, 30, f"data for every one of {MUST_HAVE_DATA}")
                failures = []
                for expr in dashboard_exprs() + alert_exprs():
                    got = await _query(session, base, expr)
                    if got.get("status") != "success":
                        failures.append((expr, got.get("error")))
                assert failures == []

                async def all_counted() -> bool:
                    for expr, _ in MUST_COUNT:
                        result = (await _query(session, base, expr))["data"]["result"]
                        if not (len(result) == 1 and float(result[0]["value"][1]) >= 1):
                            return False
                    return True

                await wait_for(all_counted, 30, f"a count of at least 1 for each of {MUST_COUNT}")
                for expr, labels in MUST_COUNT:
                    result = (await _query(session, base, expr))["data"]["result"]
                    assert labels.items() <= result[0]["metric"].items(), (expr, result)
                assert MUST_COUNT[-1][0] in dashboard_exprs()
                async with session.get(f"{base}/api/v1/rules") as resp:
                    rules = (await resp.json())["data"]["groups"][0]["rules"]
                assert len(rules) == len(alert_exprs())
                assert all(r["health"] != "err" for r in rules), rules
        finally:
            prom.terminate()
            await asyncio.wait_for(prom.wait(), 20)
            log.close()
