"""Verdicts over HTTP: recorded flipping trajectories posted step by step, the fail
mode when no detector answers, ``wait=false`` with the verdict on the SSE feed, and the
episode read-back (RI history, flips, recoveries)."""

import asyncio
import csv
import json
from pathlib import Path

import pytest

from schemas.episode import FailMode
from tests.api_helpers import api_client, mo_step, register, wait_ready
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv

N = 5  # DetectorConfig.n_consecutive default: a flip needs N sustained steps


def _onset(name: str) -> int:
    with (BUNDLED_DIR / "labels.tsv").open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["file"] == name:
                assert row["runaway"] == "1"
                return int(row["onset_step"])
    raise AssertionError(f"{name} is not labelled")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_36_52_416269.tsv", "reset"),
        # a flip from step 1: never judged safe, so no safe savepoint: remind instead
        (
            "balancing-unbounded-objectives-no-hint_gpt-4o-mini_2025_02_12_22_30_11_916997.tsv",
            "remind",
        ),
    ],
)
async def test_recorded_flip_gets_reset_near_the_labelled_onset(settings, redis, name, expected):
    recording = read_tsv(Path(BUNDLED_DIR / name))
    onset = _onset(name)
    spec, events = events_from_recording(recording)
    async with api_client(settings, step_timeout_s=10) as client:
        body = {
            "environment": spec.environment,
            "env_options": spec.env_options,
            "steps": spec.steps,
            "labels": {"model": recording.model},
        }
        ep = await register(client, body)
        verdicts = []
        for ev in events[: onset + N + 1]:
            step = {
                "step": ev.step,
                "observation": ev.observation,
                "action": ev.action,
                "rewards": ev.rewards,
                "text": ev.text,
            }
            resp = await client.post(f"/v1/episodes/{ep}/steps", json=step)
            assert resp.status == 200, await resp.text()
            v = await resp.json()
            assert v["fail_mode"] is None, v  # a real verdict, not the fail mode
            verdicts.append(v)
            if v["verdict"] != "continue":
                break
    before = [v["step"] for v in verdicts if v["step"] < onset and v["verdict"] != "continue"]
    assert before == [], f"reset before the labelled onset {onset}: {before}"
    resets = [v for v in verdicts if v["verdict"] == expected]
    assert resets, f"no {expected} within {N} steps of the labelled onset {onset}"
    reset = resets[0]
    assert onset <= reset["step"] <= onset + N
    assert reset["savepoint_step"] is not None and reset["savepoint_step"] < reset["step"]
    assert reset["reminder"] and "runaway" in reset["flags"]
    assert reset["cause"] == "runaway" and reset["policy"] == "reset"
    assert reset["command_id"]
    if expected == "remind":
        assert "no safe savepoint" in reset["reason"]
    assert set(reset) >= {"verdict", "savepoint_step", "runaway_index", "flags"}


async def test_continue_verdict_shape_and_episode_history(settings, redis):
    async with api_client(settings, step_timeout_s=10) as client:
        ep = await register(client)
        for step in range(1, 4):
            resp = await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(step))
            assert resp.status == 200
            v = await resp.json()
            assert v["verdict"] == "continue" and v["fail_mode"] is None
            assert isinstance(v["runaway_index"], float) and isinstance(v["flags"], list)
            assert "savepoint_step" in v and v["step"] == step
        resp = await client.get(f"/v1/episodes/{ep}")
        body = await resp.json()
        assert [h["step"] for h in body["history"]] == [1, 2, 3]
        assert body["last_step"] == 3 and body["accepted_step"] == 3
        listing = await (await client.get("/v1/episodes", params={"status": "active"})).json()
        assert ep in [e["episode_id"] for e in listing["items"]]


async def test_fail_mode_closed_and_open(settings, redis):
    # no detector at all: every step times out and the fail mode answers
    async with api_client(settings, detector=False, step_timeout_s=0.2) as client:
        closed = await register(client)  # the global default: closed
        opened = await register(
            client, {"environment": "multiobjective-homeostasis", "fail_mode": "open"}
        )
        resp = await client.post(f"/v1/episodes/{closed}/steps", json=mo_step(1))
        v = await resp.json()
        assert resp.status == 200
        assert v["verdict"] == "reset" and v["fail_mode"] == "closed"
        assert v["savepoint_step"] == 0
        assert 200 <= v["latency_ms"] < 2000
        resp = await client.post(f"/v1/episodes/{opened}/steps", json=mo_step(1))
        v = await resp.json()
        assert v["verdict"] == "continue" and v["fail_mode"] == "open"
        metrics = await (await client.get("/metrics")).text()
        assert 'runaway_sidecar_fail_mode_verdicts_total{mode="closed"} 1.0' in metrics
        assert 'runaway_sidecar_fail_mode_verdicts_total{mode="open"} 1.0' in metrics
    async with api_client(
        settings, detector=False, step_timeout_s=0.2, fail_mode=FailMode.OPEN
    ) as c:
        ep = await register(c)
        v = await (await c.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))).json()
        assert v["verdict"] == "continue" and v["fail_mode"] == "open"


async def _read_events(resp, until_kind: str, limit_s: float = 10.0) -> list[dict]:
    seen = []
    async with asyncio.timeout(limit_s):
        kind = None
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.append({"event": kind, **json.loads(line[6:])})
                if kind == until_kind:
                    return seen
    return seen


async def test_wait_false_and_sse_feed(settings, redis):
    async with api_client(settings, step_timeout_s=10) as client:
        ep = await register(client)
        resp = await client.post(f"/v1/episodes/{ep}/steps", json=mo_step(1))
        assert resp.status == 200  # the detector is up
        sse = await client.get("/v1/events", params={"episode_id": ep})
        assert sse.status == 200 and sse.headers["Content-Type"] == "text/event-stream"
        step = {**mo_step(2), "text": "SECRET-PROMPT"}
        resp = await client.post(f"/v1/episodes/{ep}/steps?wait=false", json=step)
        assert resp.status == 202 and (await resp.json())["verdict"] is None
        events = await _read_events(sse, "verdict")
        sse.close()
        kinds = [e["event"] for e in events]
        assert "step" in kinds and kinds[-1] == "verdict"
        assert events[-1]["step"] == 2 and events[-1]["episode_id"] == ep
        assert all("SECRET-PROMPT" not in json.dumps(e) for e in events)
        assert (await client.get("/v1/events", params={"kinds": "nope"})).status == 422


async def test_service_endpoints(settings, redis):
    async with api_client(settings) as client:
        assert (await client.get("/healthz")).status == 200
        doc = await (await client.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.") and "/v1/episodes/{episode_id}/steps" in doc["paths"]
        assert "StepRequest" in doc["components"]["schemas"]
        page = await client.get("/")
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        resp = await wait_ready(client)
        body = await resp.json()
        assert body["status"] == "ready" and body["detectors"] >= 1
        metrics = await (await client.get("/metrics")).text()
        for name in (
            "runaway_http_requests_total",
            "runaway_verdict_latency_seconds",
            "runaway_consumer_group_lag",
            "runaway_detector_up",
        ):
            assert name in metrics


def test_live_payload_keeps_prompts_reminders_and_errors_out():
    from monitor.api.feed import live_payload
    from schemas.events import EpisodeFinished, EpisodeStarted, RecoveryCommand, StepEvent
    from tests.pipeline_helpers import spec

    started = live_payload(EpisodeStarted(episode_id="e", spec=spec("e", "homeostasis")))
    assert started["kind"] == "episode_started" and started["objectives"] == ["level"]
    assert "spec" not in started  # the agent's options and prompts stay out
    step = StepEvent(
        episode_id="e", step=1, observation={"level": 1}, action={"level": 2}, text="SECRET"
    )
    assert "text" not in live_payload(step) and live_payload(step)["action"] == {"level": 2.0}
    cmd = RecoveryCommand(
        episode_id="e",
        step=3,
        command_id="c",
        savepoint_step=1,
        reminder="SECRET",
        reason="r",
        step_ts=0.0,
    )
    assert "reminder" not in live_payload(cmd) and live_payload(cmd)["kind"] == "recovery_command"
    done = EpisodeFinished(episode_id="e", step=3, reason="error", error="SECRET trace")
    assert "error" not in live_payload(done) and live_payload(done)["reason"] == "error"


async def test_openapi_lists_every_route_the_service_answers(settings, redis):
    """A route added without its entry in /openapi.json (and so never fuzzed) fails here."""
    async with api_client(settings) as client:
        doc = await (await client.get("/openapi.json")).json()
        routes = {
            (r.method.lower(), r.resource.canonical)
            for r in client.server.app.router.routes()
            if r.resource is not None and r.method in ("GET", "POST")
        }
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    undocumented = {
        (m, p)
        for m, p in routes - documented
        if not p.startswith("/static") and p != "/openapi.json"
    }
    assert not undocumented, sorted(undocumented)
    assert ("post", "/v1/traces") in documented
    assert "GuardrailRequest" in doc["components"]["schemas"]
