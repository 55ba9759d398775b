"""The live page's read endpoints against a real Redis and the in-process detector.

A recorded GPT-4o-mini trial that flips (multiobjective-homeostasis, trial 3, labelled
onset 22) is posted step by step; then the episode's trace has one entry per step with
what was posted and the reset, the totals, ``/metrics``' ``runaway_flips_total`` and the
episode's ``flip_count`` are one number, and the flip list has the episode with its
onset. The list is paged and filtered over 10,000 indexed episodes, and bad query
parameters are 422s naming the parameter.
"""

from tests.api_helpers import api_client, metric_sum
from tests.page_helpers import LABELLED_ONSET, index_episodes, post_trajectory


async def test_trace_totals_and_flips_of_a_flipping_trial(settings, redis):
    steps = 40
    async with api_client(settings, step_timeout_s=10) as client:
        ep, events, verdicts = await post_trajectory(client, steps)
        resets = [v for v in verdicts if v["verdict"] == "reset"]
        assert len(resets) == 1, "the trial flips once and is reset once"

        resp = await client.get(f"/v1/episodes/{ep}/steps")
        assert resp.status == 200
        body = await resp.json()
        assert "SECRET-ANSWER-TEXT" not in await resp.text()
        trace = body["items"]
        assert [t["step"] for t in trace] == list(range(1, steps + 1))
        assert body["next_after"] is None
        for t, ev, v in zip(trace, events, verdicts, strict=True):
            assert t["observation"] == ev.observation and t["action"] == ev.action
            assert t["verdict"] == v["verdict"] and t["runaway_index"] == v["runaway_index"]
        reset = next(t for t in trace if t["verdict"] == "reset")
        assert reset["cause"] == "runaway" and "runaway" in reset["detections"]
        assert reset["savepoint_step"] == resets[0]["savepoint_step"] < reset["step"]

        paged, after = [], None  # the same trace, 7 at a time
        while True:
            query = {"limit": "7", **({"after": after} if after else {})}
            page = await (await client.get(f"/v1/episodes/{ep}/steps", params=query)).json()
            paged += page["items"]
            after = page["next_after"]
            if after is None:
                break
        assert [t["step"] for t in paged] == list(range(1, steps + 1))

        totals = await (await client.get("/v1/totals")).json()
        metrics = await (await client.get("/metrics")).text()
        row = await (await client.get(f"/v1/episodes/{ep}")).json()
        flips_metric = metric_sum(metrics, "runaway_flips_total")
        assert totals["flips"] == flips_metric == row["flip_count"] >= 1
        assert totals["flips_by_flag"]["runaway"] == metric_sum(
            metrics, "runaway_flips_total", flag="runaway"
        )
        assert totals["recoveries"] == 1 and totals["steps"] == steps
        assert totals["episodes"] == totals["episodes_flipped"] == 1
        assert row["model"] == "gpt-4o-mini" and row["source"] == "api"
        assert (
            metric_sum(metrics, "runaway_episode_verdicts_total", action="reset", cause="runaway")
            == 1
        )
        assert metric_sum(metrics, "runaway_sidecar_fail_mode", mode="closed") == 1

        flips = (await (await client.get("/v1/flips")).json())["items"]
        runaway = [f for f in flips if f["episode_id"] == ep and f["flag"] == "runaway"]
        assert len(runaway) == 1
        assert abs(runaway[0]["onset_step"] - LABELLED_ONSET) <= 1
        assert runaway[0]["step"] == reset["step"]
        assert runaway[0]["model"] == "gpt-4o-mini"
        assert runaway[0]["environment"] == "multiobjective-homeostasis"


async def test_episode_list_pages_and_filters_10000(settings, redis):
    n = 10_000
    await index_episodes(redis, settings, n)
    async with api_client(settings, detector=False) as client:
        first = await (await client.get("/v1/episodes", params={"limit": "50"})).json()
        assert first["total"] == n and len(first["items"]) == 50
        assert first["items"][0]["episode_id"] == "ep-09999"  # newest first
        assert first["next_offset"] == 50

        async def walk(**params: str) -> list[dict]:
            items, offset, requests = [], 0, 0
            while offset is not None:
                resp = await client.get("/v1/episodes", params={**params, "offset": str(offset)})
                assert resp.status == 200
                page = await resp.json()
                assert page["scanned"] <= 2000
                items += page["items"]
                offset, requests = page["next_offset"], requests + 1
                assert requests < 200
            return items

        everything = await walk(limit="200")
        assert len({e["episode_id"] for e in everything}) == n
        flagged = await walk(limit="200", flagged="true", environment="homeostasis")
        assert len(flagged) == n // 10
        assert all(e["flags"] == ["runaway"] and e["environment"] == "homeostasis" for e in flagged)
        unflipped = await walk(limit="200", flipped="false", status="finished")
        assert len(unflipped) == n // 2 and all(e["flip_count"] == 0 for e in unflipped)
        rare = await walk(limit="10", model="rare-model")  # the oldest: many scans away
        assert [e["episode_id"] for e in rare] == ["ep-00000"]

        for params, field in (
            ({"limit": "0"}, "limit"),
            ({"limit": "201"}, "limit"),
            ({"offset": "-1"}, "offset"),
            ({"flipped": "maybe"}, "flipped"),
            ({"status": "gone"}, "status"),
            ({"colour": "red"}, "colour"),
            ({"model": ""}, "model"),
        ):
            resp = await client.get("/v1/episodes", params=params)
            assert resp.status == 422, params
            assert (await resp.json())["field"] == field
        for params, field in (
            ({"after": "x"}, "after"),
            ({"limit": "1001"}, "limit"),
            ({"after": "99999999999999999999-0"}, "after"),
        ):
            resp = await client.get("/v1/episodes/ep-00001/steps", params=params)
            assert resp.status == 422 and (await resp.json())["field"] == field
        assert (await client.get("/v1/episodes/nope/steps")).status == 404
        resp = await client.get("/v1/flips", params={"limit": "501"})
        assert resp.status == 422 and (await resp.json())["field"] == "limit"


async def test_page_and_its_vendored_chart_library_are_served(settings, redis):
    async with api_client(settings, detector=False) as client:
        page = await (await client.get("/")).text()
        assert '<script src="/static/uPlot.iife.min.js"></script>' in page
        assert "http://" not in page and "https://" not in page  # works offline: no CDN
        lib = await client.get("/static/uPlot.iife.min.js")
        assert lib.status == 200 and "uPlot" in await lib.text()
        assert "MIT License" in await (await client.get("/static/uPlot.LICENSE")).text()
        assert (await client.get("/static/..%2Fapp.py")).status == 404
        assert (await client.get("/static/index.html")).status == 404
