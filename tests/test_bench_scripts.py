"""Every bench script runs as its README line says (``python bench/x.py --json``) and
prints sane figures, at toy sizes so the suite stays fast. The figures themselves are
not judged here (a shared CI box says little about speed); what is checked is that each
bench measures what it claims: all steps played, results identical where it compares
runs, every HTTP request answered, the detector's state counted per episode.

Each run uses its own embedded Redis (``REDIS_URL`` unset): the benches do not clean up
a shared server's keys, and a private server goes away with them.
"""

import asyncio
import sys

import pytest

from bench.ablation import ABLATIONS
from tests.bench_helpers import ROOT, run_bench


async def test_pipeline_bench_plays_every_step_and_matches_across_process_layouts():
    out = await run_bench(
        "bench/pipeline.py", "--episodes", "12", "--steps", "10", "--detectors", "1,2"
    )
    assert out["steps"] == 120
    assert out["flips"] >= 1 and out["recoveries"] >= 1  # the demo mix flips and recovers
    assert out["pipeline_steps_per_s"] > 0 and out["raw_entries_per_s"] > 0
    assert out["ratio"] == round(out["pipeline_steps_per_s"] / out["raw_entries_per_s"], 3)
    assert out["pipeline_detector_cpu_us_per_step"] > 0  # the detector process was measured
    assert out["in_process_identical"] is True and out["detectors_2_identical"] is True
    assert out["detectors_1_steps_per_s"] == out["pipeline_steps_per_s"]  # the same run


async def test_latency_bench_measures_detection_and_answers_every_http_request():
    sizes = ["--episodes", "30", "--rate", "100", "--steps", "4"]
    http = ["--http-rate", "50", "--http-seconds", "1", "--http-episodes", "5"]
    out = await run_bench("bench/latency.py", *sizes, *http)
    assert out["e30_steady_steps"] > 0
    assert 0 < out["e30_detection_ms_p50"] <= out["e30_detection_ms_p99"]
    assert out["http_requests"] == 50 and out["http_statuses"] == "200:50"
    assert out["http_fail_mode_answers"] == 0
    assert 0 < out["http_verdict_ms_p50"] <= out["http_verdict_ms_p99"]


async def test_memory_bench_counts_a_real_detector_process_per_episode():
    out = await run_bench(
        "bench/memory.py", "--episodes", "60", "--steps", "4", "--worker-episodes", "6"
    )
    assert out["detector_episodes"] == 60
    assert 0 < out["detector_state_bytes_per_episode"] < 2048
    assert out["detector_rss_mb"] > 10  # a Python process's RSS, not the bench's delta
    assert out["worker_active_episodes"] == 6
    assert out["redis_used_memory_mb"] > 0


async def test_vs_sequential_bench_gets_identical_results_both_ways():
    out = await run_bench(
        "bench/vs_sequential.py", "--episodes", "4", "--steps", "5", "--delay-ms", "5"
    )
    assert out["identical"] is True
    assert out["sequential_s"] > 0 and out["concurrent_s"] > 0
    assert out["speedup"] == round(out["sequential_s"] / out["concurrent_s"], 1)


async def test_scorer_bench_times_every_trial_step():
    out = await run_bench("-m", "bench.scorer", "--repeat", "1", "--rounds", "1")
    assert out["steps"] > 1000 and out["scorer_steps_per_s"] > 0
    assert out["us_per_step"] > 0


# every ablation, each patch refusing a name that is gone (a rename fails here), and each
# holding the episodes' results to the baseline's
SAMPLED = tuple(ABLATIONS)


@pytest.mark.timeout(300)
async def test_ablation_bench_runs_every_ablation_against_the_baseline():
    out = await run_bench(
        "bench/ablation.py",
        "--episodes",
        "8",
        "--steps",
        "10",
        "--repeats",
        "1",
        "--only",
        ",".join(SAMPLED),
        timeout_s=280,
    )
    assert out["steps"] == 80 and out["baseline_python_us_per_step"] > 0
    assert set(SAMPLED) <= set(ABLATIONS)
    for name in SAMPLED:
        assert out[f"{name}_python_us_per_step"] > 0
        # switching a cost off must not change what the episodes did (same seeds)
        assert out[f"{name}_identical"] is True, name


async def test_ablation_bench_refuses_an_unknown_ablation():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "bench/ablation.py",
        "--only",
        "metrics,nonsense",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"unknown ablation(s) ['nonsense']" in err


async def test_otel_export_bench_times_the_loop_and_the_span_thread_apart():
    out = await run_bench("-m", "bench.otel_export", "--rounds", "1", "--trials", "5")
    assert out["steps"] == 500  # 5 shared trials of 100 steps, every step with its verdict
    assert 0 < out["loop_us_per_step"] < out["span_thread_us_per_step"]
    assert out["feed_decode_us_per_step"] > 0 and out["span_thread_vs_decode"] > 0
