"""``bench/vs_inspect.py`` runs as its docstring says, at a toy size: Inspect (monitor off,
then hooks and recovery wrapper on) and runaway-monitor's run play identical actions,
and the ratios are computed from the steps/s it prints. Speed is not judged here."""

import pytest

from tests.bench_helpers import run_bench

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.mark.timeout(480)
async def test_vs_inspect_bench_plays_identical_actions_three_ways():
    out = await run_bench(
        "bench/vs_inspect.py",
        "--episodes",
        "3",
        "--steps",
        "3",
        "--delay-ms",
        "5",
        "--max-connections",
        "3",
        timeout_s=420,
    )
    assert out["identical_actions"] is True and out["monitored_identical_actions"] is True
    assert out["inspect_best_max_connections"] == 3
    assert out["monitored_verdict_problems"] == 0  # every step got its verdict in time
    a, b, c = (
        out[k]
        for k in ("inspect_steps_per_s", "inspect_monitored_steps_per_s", "runaway_steps_per_s")
    )
    assert a > 0 and b > 0 and c > 0
    # the ratios come from the unrounded rates, the printed rates are rounded to 0.1
    assert out["runaway_vs_inspect"] == pytest.approx(c / a, rel=0.1 / a + 0.1 / c + 1e-3)
    assert out["hooks_overhead"] == pytest.approx(1 - b / a, abs=0.1 / a + 0.1 / b + 1e-3)
