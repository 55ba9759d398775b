"""The mirror's pure parts: conversations, windows, the store, targets, probes, plots.

No model here (tests/test_mirror_model.py runs SmolLM2): the probe code is checked on
synthetic hidden states whose answer is known, so it cannot be right by accident.
"""

from pathlib import Path

import numpy as np
import pytest

from detectors.evaluation import Label, parse_labels
from monitor.analysis.mirror.conversation import ConversationError, load_conversation
from monitor.analysis.mirror.direction import flip_direction, projection
from monitor.analysis.mirror.plot import plot_all, plot_stem
from monitor.analysis.mirror.probe import Rows, bootstrap_auc, hazard_within, probe_layer
from monitor.analysis.mirror.store import MirrorStore, Record, cache_key
from monitor.analysis.mirror.targets import state_target, within_target
from monitor.analysis.mirror.windows import WindowError, plan_windows

DATA = Path(__file__).resolve().parent.parent / "workers" / "data" / "bioblue"
FLIPPED = DATA / "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_32_56_891497.tsv"


def test_a_recorded_trial_is_one_segment_with_every_observation() -> None:
    conv = load_conversation(FLIPPED)
    assert conv.name == FLIPPED.name and conv.benchmark == "multiobjective-homeostasis"
    assert len(conv.segments) == 1 and conv.steps == list(range(1, 101))
    seg = conv.segments[0]
    assert seg.messages[0]["role"] == "system"
    for step, index in seg.observations.items():
        assert seg.messages[index]["role"] == "user"
        if step > 1:  # the answer to the step before comes right before the observation
            assert seg.messages[index - 1]["role"] == "assistant"
    assert load_conversation(FLIPPED).digest == conv.digest


def test_an_unreadable_trajectory_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("not\ta\tbioblue\tfile\n1\t2\t3\t4\n")
    with pytest.raises(ConversationError, match=r"bad\.tsv"):
        load_conversation(bad)


def test_windows_cover_every_observation_once_with_the_system_prompt() -> None:
    counts = [50] + [10] * 40
    observations = list(range(1, 41, 2))
    assert plan_windows(counts, observations, 1000)[0].record == observations
    passes = plan_windows(counts, observations, 200)
    assert len(passes) > 1
    recorded = [i for p in passes for i in p.record]
    assert recorded == observations
    for p in passes:
        assert p.messages[0] == 0
        assert sum(counts[i] for i in p.messages) <= 200
        assert all(i in p.messages for i in p.record)
        assert p.messages[1] in observations or p.messages[1] == 1  # starts at a user turn
    for p in passes[1:]:  # about half a window of context before the first recorded step
        first = p.record[0]
        assert sum(counts[i] for i in p.messages if i < first) >= 200 // 2 - 20


def test_a_message_longer_than_the_window_is_an_error() -> None:
    with pytest.raises(WindowError):
        plan_windows([10, 500, 10], [1], 100)


def test_the_store_maps_trajectory_step_layer_back(tmp_path: Path) -> None:
    store = MirrorStore(tmp_path)
    hidden = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    key = cache_key("m", "d", [4, 8], 512)
    assert key != cache_key("m", "d", [4, 12], 512) != cache_key("m", "e", [4, 8], 512)
    record = Record("t.tsv", "/x/t.tsv", "d", "b", "m", [4, 8], [1, 2, 3], key)
    store.save(record, hidden)
    assert store.has(key)
    (again,) = store.records()
    assert again == record
    assert store.hidden(again).dtype == np.float16
    np.testing.assert_array_equal(store.lookup(again, 2, 8), hidden[1, 1].astype(np.float16))
    with pytest.raises(ValueError):
        store.save(record, hidden[:2])


def _label(runaway: bool, onset: int | None) -> Label:
    return Label("t", "b", runaway, onset, "", False, None)


def test_targets_follow_the_labelled_onset() -> None:
    flipped, calm = _label(True, 30), _label(False, None)
    assert [state_target(flipped, s) for s in (29, 30, 31)] == [0, 1, 1]
    assert [within_target(flipped, s) for s in (19, 20, 29, 30)] == [0, 1, 1, None]
    assert state_target(calm, 50) == 0 and within_target(calm, 50) == 0


def _rows(rng: np.random.Generator, signal: bool) -> Rows:
    groups = np.repeat(np.arange(10), 40)
    state = np.tile((np.arange(40) >= 20).astype(int), 10) * (groups % 2)
    within = np.where(
        state == 1,
        -1,
        np.tile(((np.arange(40) >= 10) & (np.arange(40) < 20)).astype(int), 10) * (groups % 2),
    )
    x = rng.normal(size=(len(groups), 16))
    if signal:
        x[:, 0] += 6 * state
        x[:, 1] += 6 * (within == 1)
    return Rows(x, state, within, groups, rng.random(len(groups)))


def test_a_probe_finds_a_separable_signal_and_not_a_shuffled_one() -> None:
    rng = np.random.default_rng(0)
    found = probe_layer(_rows(rng, signal=True))
    assert found["state"]["auc"] == pytest.approx(1.0, abs=1e-3)
    assert found["within"]["auc"] > 0.98
    rows = _rows(rng, signal=True)
    shuffled = Rows(rows.x, rng.permutation(rows.state), rows.within, rows.groups, rows.hazard)
    chance = probe_layer(shuffled)["state"]["auc"]
    assert 0.35 < chance < 0.65
    assert 0.3 < hazard_within(rows)["auc"] < 0.7  # a random hazard is at chance


def test_cross_set_probing_trains_on_one_and_scores_the_other() -> None:
    rng = np.random.default_rng(1)
    result = probe_layer(_rows(rng, True), _rows(rng, True))
    assert result["state"]["auc"] > 0.99


def test_bootstrap_interval_brackets_the_auc() -> None:
    rng = np.random.default_rng(2)
    rows = _rows(rng, True)
    score = rows.x[:, 0]
    low, high = bootstrap_auc(rows.state, score, rows.groups)
    assert low is not None and high is not None and low <= 1.0 <= high + 1e-9


def test_flip_direction_and_plots(tmp_path: Path) -> None:
    store = MirrorStore(tmp_path)
    rng = np.random.default_rng(3)
    labels = {}
    for i, onset in enumerate([10, 15, None]):
        hidden = rng.normal(size=(30, 1, 8)).astype(np.float32)
        if onset:
            hidden[onset - 1 :, 0, 3] += 5.0
        name = f"t{i}.tsv"
        labels[name] = _label(onset is not None, onset)
        store.save(
            Record(
                name,
                name,
                str(i),
                "b",
                "m",
                [4],
                list(range(1, 31)),
                f"k{i}",
                resets=[20] if i == 0 else [],
            ),
            hidden,
        )
    direction = flip_direction(store, store.records(), labels, 4)
    assert direction is not None and int(np.argmax(np.abs(direction))) == 3
    curve = projection(store, store.records()[0], 4, direction)
    assert curve[12:].mean() > curve[:8].mean() + 3
    written = plot_all(store, labels)
    assert len(written) == 3 and all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "directions.npz").is_file()


def test_labels_of_the_shared_trials_parse() -> None:
    labels = parse_labels((DATA / "labels.tsv").read_text())
    assert labels[FLIPPED.name].runaway and labels[FLIPPED.name].onset_step == 22


def test_max_steps_cuts_a_trial_to_its_first_steps_as_it_was_read() -> None:
    full = load_conversation(FLIPPED)
    cut = load_conversation(FLIPPED, max_steps=5)
    assert cut.steps == [1, 2, 3, 4, 5] and cut.digest != full.digest
    (seg,), (whole,) = cut.segments, full.segments
    assert seg.messages == whole.messages[: whole.observations[5] + 2]
    assert seg.observations == {s: whole.observations[s] for s in range(1, 6)}
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_steps must be a whole number of at least 1"):
            load_conversation(FLIPPED, max_steps=bad)


def test_plot_names_are_unique_per_inspect_sample_and_safe_in_a_link() -> None:
    assert plot_stem(FLIPPED.name) == FLIPPED.stem
    first, second = plot_stem("run.eval#seed-1"), plot_stem("run.eval#seed-2")
    assert (first, second) == ("run_seed-1", "run_seed-2")
    assert plot_stem("run.eval#a b/c@2") == "run_a_b_c_2"
