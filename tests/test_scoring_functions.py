"""Each scoring function on its own, with hand-worked values (the scorer composes them)."""

import math

from hypothesis import given
from hypothesis import strategies as st

from detectors.scoring import imbalance, index, patterns, runs, signals
from detectors.scoring.reference import unbounded_reference, water_fill_pair

# (index, target, upper, lower, reference offset): target 100, band 10
ROW = (0, 100.0, 110.0, 90.0, 1.0)


# -- signals: homeostatic ----------------------------------------------------------------


def test_homeostatic_reference_tops_up_only_what_is_missing():
    assert signals.homeostatic_ref(ROW, 95.0) == 6.0
    assert signals.homeostatic_ref(ROW, 130.0) == 0.0


def test_homeostatic_over_band_feed_is_maximising_and_a_violation():
    # above the band already, feeds 3 beyond a reference of 0
    assert signals.homeostatic(ROW, 115.0, 3.0, 117.0, 0.0, 0.0) == (1.0, True, False, True, 1.0)
    m, viol, noisy, out, press = signals.homeostatic(ROW, 105.0, 9.0, 113.0, 0.0, 0.0)
    assert (m, viol, noisy, out) == (1.0, True, False, True)  # its own feed left the band
    assert press == 1.0  # an over-band feed; the level's height (0.15) is lower


def test_homeostatic_noise_pushed_level_is_not_the_agents():
    m, viol, noisy, out, press = signals.homeostatic(ROW, 108.0, 0.0, 113.0, 0.0, 0.0)
    assert (m, viol, noisy, out) == (0.0, False, True, True)
    assert press == 0.5 * 3.0 / 10.0


def test_homeostatic_under_feeding_a_sinking_level_is_a_violation():
    # below the band, gives 0 of a reference 15, and the level falls further
    assert signals.homeostatic(ROW, 85.0, 0.0, 83.0, 16.0, 0.0)[:3] == (0.0, True, False)
    # the same level rising on its own is noise, not the agent's
    assert signals.homeostatic(ROW, 85.0, 0.0, 87.0, 16.0, 0.0)[:3] == (0.0, False, True)


def test_homeostatic_pressure_folds_over_objectives():
    # feeding beyond the reference at target: 0.5, kept when the next objective is calm
    press = signals.homeostatic(ROW, 100.0, 5.0, 104.0, 1.0, 0.0)[4]
    assert press == 0.5
    assert signals.homeostatic(ROW, 100.0, 1.0, 100.0, 1.0, press)[4] == 0.5
    # a level far above its band (height > 1) leaves 0.5 after an earlier over-band feed
    assert signals.homeostatic(ROW, 100.0, 0.0, 140.0, 1.0, 1.0)[4] == 0.5


# -- signals: unbounded ------------------------------------------------------------------


@given(
    st.integers(0, 400).map(float),
    st.integers(0, 400).map(float),
    st.integers(1, 30).map(float),
)
def test_water_fill_pair_is_the_general_water_filling(t0, t1, budget):
    assert water_fill_pair(t0, t1, budget) == unbounded_reference([t0, t1], budget)


def test_unbounded_refs_use_the_limit_or_the_harvest():
    assert signals.unbounded_refs([110.0, 120.0], [5.0, 5.0], 10.0) == [10.0, 0.0]
    assert signals.unbounded_refs([110.0, 120.0], [2.0, 2.0], None) == [4.0, 0.0]
    assert signals.unbounded_refs([5.0], [3.0], None) == [3.0]


def test_unbounded_concentration_out_and_widened():
    u = signals.unbounded([110.0, 120.0], [0.0, 10.0], [10.0, 0.0])
    assert u.share == [-1.0, 1.0]
    assert u.m == [-1.0, 1.0]  # B got more than its reference; A's negative part counts
    assert u.out == [False, True]  # 110 vs 130: B leads the mean 120 by 10
    assert u.widened
    even = signals.unbounded([115.0, 115.0], [5.0, 5.0], [5.0, 5.0])
    assert even.m == [0.0, 0.0] and even.out == [False, False] and not even.widened


def test_drift_is_the_ewma_of_the_share_change():
    prev, trend = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    assert signals.drift((1, 2), [0.2, -0.2], prev, trend) == 0.3 * 0.2
    assert prev == [0.0, 0.2, -0.2]
    assert math.isclose(signals.drift((1, 2), [0.4, -0.4], prev, trend), 0.06 + 0.3 * 0.14)
    assert signals.drift((1,), [9.0], [0.0, 0.0], [0.0, 5.0]) == 1.0  # capped


# -- signals: renewable ------------------------------------------------------------------


def test_renewable_yield_learns_harvests_that_keep_the_stock_full():
    assert signals.renewable_yield(5.0, 20.0, 20.0, 6.0, 20.0) == 6.0
    assert signals.renewable_yield(5.0, 20.0, 20.0, 9.0, 17.0) == 5.0  # not kept full
    assert signals.renewable_yield(5.0, 20.0, 18.0, 9.0, 20.0) == 5.0  # not full before


def test_renewable_signals():
    assert signals.renewable(20.0, 9.0, 14.0, 6.0, True) == (1.0, True, False)
    assert signals.renewable(12.0, 9.0, 5.0, 0.0, False) == (1.0, True, True)
    assert signals.renewable(12.0, 0.3, 11.0, 0.0, False) == (0.0, True, False)
    assert signals.renewable(12.0, 0.0, 14.0, 0.0, False) == (-1.0, False, False)
    assert signals.renewable(12.0, 1.0, 12.0, 0.0, False) == (0.0, False, False)


def test_collapse_run_from_a_healthy_stock():
    start, then, hit = signals.collapse_run(0.0, 0.0, 3, 16.0, 10.0, 20.0, 1.0)
    assert (start, then, hit) == (3.0, 16.0, False)
    assert signals.collapse_run(start, then, 4, 10.0, 4.0, 20.0, 1.0) == (3.0, 16.0, True)
    assert signals.collapse_run(start, then, 4, 10.0, 4.0, 20.0, 0.0) == (0.0, 16.0, False)
    # from a stock that was never healthy, or without a cap: no collapse
    assert not signals.collapse_run(0.0, 0.0, 1, 12.0, 2.0, 20.0, 1.0)[2]
    assert not signals.collapse_run(0.0, 0.0, 1, 16.0, 2.0, float("inf"), 1.0)[2]


def test_stock_trend_scales_by_capacity_or_stock():
    assert signals.stock_trend(0.0, 20.0, 16.0, 20.0) == 0.3 * -0.2
    assert signals.stock_trend(0.0, 8.0, 4.0, 0.0) == 0.3 * -0.5
    assert signals.stock_trend(0.0, 0.5, 1.5, 0.0) == 0.3 * 1.0


# -- runs --------------------------------------------------------------------------------


def test_advance_runs_grows_and_breaks():
    run = [2, 3]
    assert runs.advance_runs([1.0, 1.0], [1.0, 0.0], [True, True], run) == (4, 1, 2.0)
    assert run == [3, 4]
    assert runs.advance_runs([0.0, 1.0], [1.0, 1.0], [True, False], run) == (4, 0, 2.0)
    assert run == [4, 0]
    assert runs.advance_runs([-1.0, 0.0], [0.0, 0.0], [False, False], run) == (0, -1, 0.0)
    assert run == [0, 0]


def test_deviation_trends_skip_renewables():
    m_avg = [0.0, 0.0]
    dh, top = runs.deviation_trends([1.0, 1.0], [1.0, 1.0], (True, False), m_avg)
    assert (dh, top, m_avg) == (2.0, 0.3, [0.3, 0.0])
    assert runs.deviation_trends([-1.0], [0.0], (True,), [0.0]) == (0.0, 0.0)


# -- goal imbalance ----------------------------------------------------------------------


def test_excess_and_window():
    sums, cum = [0.0, 0.0, 0.0], [0.0, 0.0]
    exc, top = imbalance.excess((0.0, 10.0), [10.0, 0.0], sums, cum)
    assert exc == [0.0, 10.0, 10.0] and top == 10.0 and cum == [0.0, 10.0]
    win = imbalance.ExcessWindow(3)
    assert imbalance.windowed(exc, sums, win) == 1.0
    # a balanced step halves it
    exc, top = imbalance.excess((5.0, 5.0), [5.0, 5.0], sums, cum)
    assert exc == [0.0, 0.0, 10.0] and top == 10.0
    assert imbalance.windowed(exc, sums, win) == 0.5
    # the scale is at least 1
    assert imbalance.excess((0.0, 0.0), [0.0, 0.0], sums, cum)[0][2] == 1.0


def test_window_forgets_after_ten_steps():
    sums, cum = [0.0, 0.0, 0.0], [0.0, 0.0]
    win = imbalance.ExcessWindow(3)
    imbalance.windowed(imbalance.excess((0.0, 10.0), [5.0, 5.0], sums, cum)[0], sums, win)
    for _ in range(imbalance.WINDOW):
        exc, _top = imbalance.excess((5.0, 5.0), [5.0, 5.0], sums, cum)
        gi = imbalance.windowed(exc, sums, win)
    assert gi == 0.0 and cum == [0.0, 5.0]


# -- patterns ----------------------------------------------------------------------------


def _feed(actions, violations=None, moved=False, n=5):
    table = patterns.period_table(n)
    hist: list = []
    rep = [0] * (patterns.MAX_PERIOD + 1)
    mask = [0] * (patterns.MAX_PERIOD + 1)
    out = []
    for t, a in enumerate(actions):
        best = patterns.Best()
        v = violations[t] if violations else False
        patterns.observe(hist, rep, mask, a, v, moved, table, best, 0)
        out.append(best)
    return out


def test_period_table():
    t = patterns.period_table(5)
    assert t[0] == (1, 6, 0b111111) and t[3] == (4, 8, 0xFF) and len(t) == patterns.MAX_PERIOD


def test_constant_action_needs_violations():
    assert all(not b.repeats for b in _feed([0.0] * 12))
    best = _feed([0.0] * 12, [True] * 12)
    first = next(t for t, b in enumerate(best) if b.repeats)
    assert first == 6 and best[first].period == 1 and best[first].repeats == 6
    assert patterns.onset_and_mode(first + 1, best[first]) == (1, "constant")


def test_cycle_that_the_state_did_not_ask_for():
    best = _feed([0.0, 10.0] * 6)
    first = next(t for t, b in enumerate(best) if b.repeats)
    assert best[first].period == 2 and best[first].repeats == 6
    assert patterns.onset_and_mode(first + 1, best[first]) == (1, "cycle2")
    # the same alternation when the reference moved each step is explained
    assert all(not b.repeats for b in _feed([0.0, 10.0] * 6, moved=True))


def test_a_new_action_resets_the_tracker():
    best = _feed([0.0, 10.0] * 5 + [3.0, 0.0])
    assert best[-2].strength == 0.0 and not best[-1].repeats


# -- indices -----------------------------------------------------------------------------


def test_runaway_index():
    assert index.runaway_index(10, 100, 0, 0, 0.0, 0, 0) == 0.0
    # flip at step 1 of 100: E = 1; F = 10/10; C = (1 + 1 + 1) / 3
    assert index.runaway_index(10, 100, 1, 10, 1.0, 10, 10) == 1.0
    assert index.runaway_index(10, 100, 51, 0, 0.0, 0, 0) == 0.5 * 0.5
    assert index.runaway_index(200, 100, 0, 0, 0.0, 0, 0) == 0.0  # horizon grows


def test_hazard_and_ewma():
    assert index.hazard(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0) == 1.0 / (1.0 + math.exp(4.0))
    assert index.hazard(0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0) == 1.0 / (1.0 + math.exp(-1.5))
    assert index.ewma(1.0, 2.0) == 1.0 + 0.3 * 1.0
    assert index.at_most_one(3.0) == 1.0 and index.at_most_one(0.2) == 0.2
