"""``mirror extract`` reads Inspect ``.eval`` logs: a real eval of the BioBlue task
against a fake model server writes the log, and each of its samples is one trajectory.

No mirror model here: a stand-in reader (a token per word, and a hidden state that
depends only on the tokens up to it, as a causal model's does) runs through the real
extraction, store and command line. tests/test_mirror_model.py runs SmolLM2.
"""

import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pytest
from inspect_ai import eval_async
from inspect_ai.log import read_eval_log, write_eval_log

from monitor.analysis.mirror import reader as reader_module
from monitor.analysis.mirror.conversation import (
    Conversation,
    ConversationError,
    load_conversation,
    load_conversations,
)
from monitor.analysis.mirror.extract import extract
from monitor.analysis.mirror.reader import Rendered
from monitor.analysis.mirror.store import MirrorStore
from monitor.analysis.mirror.study import hazard_of
from monitor.cli import main as cli
from monitor.integrations.inspect import channel as channel_module
from monitor.integrations.inspect.report import sample_events
from monitor.integrations.inspect.tasks import bioblue_task
from schemas.events import Verdict
from schemas.settings import Settings
from tests.fakes.model_server import FakeModelServer, RecordedRequest, respond_with

pytestmark = [  # inspect-ai's own, as in tests/test_inspect.py
    pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ROOT = Path(__file__).resolve().parent.parent
STEPS = 6
ENVIRONMENT = "multiobjective-homeostasis"


def answer(req: RecordedRequest) -> str:
    """A different action each step (the number of observations seen so far)."""
    seen = sum(m["role"] == "user" for m in req.messages)
    return f"{seen}, {2 * seen % 7}"


@pytest.fixture
async def eval_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real ``.eval`` log of two 6-step trials, the monitor's hooks off."""
    monkeypatch.setenv("LOCAL_API_KEY", "test-key")
    monkeypatch.setenv("INSPECT_DISPLAY", "none")
    channel_module.configure(Settings(inspect_hooks=False))
    server = await FakeModelServer(default=respond_with(answer)).start()
    try:
        task = bioblue_task(ENVIRONMENT, steps=STEPS, trials=2, mitigation="none")
        (log,) = await eval_async(
            task,
            model="openai-api/local/mirror",
            model_base_url=server.openai_base_url,
            log_dir=str(tmp_path / "logs"),
        )
    finally:
        await server.close()
        channel_module.configure(None)
    assert log.status == "success", log.error
    path = Path(log.location)
    assert path.suffix == ".eval"
    return path


class FakeReader:
    """Stands in for :class:`MirrorReader` (see the module docstring)."""

    name = "fake"
    layers = 2
    context = 1_000_000

    def __init__(self, name: str = "fake", threads: int | None = None) -> None:
        self.passes = 0

    def render(self, messages: list[Any]) -> Rendered:
        ids: list[int] = []
        ends: list[int] = []
        for message in messages:
            words = f"<{message['role']}> {message['content']}".split()
            ids += [zlib.crc32(w.encode()) % 1000 for w in words]
            ends.append(len(ids) - 1)
        return Rendered(ids, ends)

    def hidden_states(self, ids: list[int], positions: list[int], layers: list[int]) -> np.ndarray:
        self.passes += 1
        running = np.cumsum(ids)
        return np.array(
            [[[running[p] % 997, p, layer, ids[p]] for layer in layers] for p in positions],
            dtype=np.float32,
        )


def _conversations(path: Path, max_steps: int | None = None) -> list[Conversation]:
    found = load_conversations(path, max_steps)
    assert all(isinstance(c, Conversation) for c in found), found
    return cast(list[Conversation], found)


async def test_each_sample_is_a_trajectory_with_the_conversation_it_played(
    eval_log: Path,
) -> None:
    log = read_eval_log(str(eval_log))
    convs = _conversations(eval_log)
    assert sorted(c.name for c in convs) == [f"{eval_log.name}#seed-{i}" for i in (1, 2)]
    for conv, sample in zip(convs, log.samples or [], strict=True):
        assert conv.name == f"{eval_log.name}#{sample.id}"
        assert conv.source == str(eval_log) and conv.benchmark == ENVIRONMENT
        assert conv.steps == list(range(1, STEPS + 1)) and conv.resets == []
        (segment,) = conv.segments
        # the rebuilt conversation is the one the sample played, message for message
        played = [{"role": m.role, "content": m.text} for m in sample.messages]
        assert segment.messages == played
        assert [segment.messages[i]["role"] for i in segment.observations.values()] == [
            "user"
        ] * STEPS
    assert convs[0].digest != convs[1].digest  # two seeds, two conversations


async def test_max_steps_keeps_each_samples_first_steps(eval_log: Path) -> None:
    full = _conversations(eval_log)
    cut = _conversations(eval_log, max_steps=3)
    for whole, part in zip(full, cut, strict=True):
        assert part.name == whole.name and part.steps == [1, 2, 3]
        (seg,), (whole_seg,) = part.segments, whole.segments
        # up to step 3's answer, exactly the full trial's conversation
        assert seg.messages == whole_seg.messages[: whole_seg.observations[3] + 2]
        assert seg.observations == {s: whole_seg.observations[s] for s in (1, 2, 3)}
        assert part.digest != whole.digest
    assert _conversations(eval_log, max_steps=99)[0].digest == full[0].digest
    for bad in (0, -2):
        with pytest.raises(ValueError, match="max_steps must be a whole number of at least 1"):
            load_conversations(eval_log, bad)


async def test_extract_stores_each_sample_and_skips_what_it_cannot_read(
    eval_log: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.eval"
    broken.write_bytes(b"not a zip archive")
    reader = FakeReader()
    store = MirrorStore(tmp_path / "states")
    report = extract([eval_log, broken], cast(Any, reader), store, [1, 2])
    names = [f"{eval_log.name}#seed-1", f"{eval_log.name}#seed-2"]
    assert sorted(r.trajectory for r in report.done) == names
    assert [p for p, _ in report.skipped] == [str(broken)]
    assert "broken.eval: not a readable Inspect log" in report.skipped[0][1]
    assert all(r.seconds > 0 and r.source == str(eval_log) for r in report.done)
    records = {r.trajectory: r for r in store.records()}
    hidden = store.hidden(records[names[0]])
    assert hidden.shape == (STEPS, 2, 4) and hidden.dtype == np.float16
    assert reader.passes == 2  # one forward pass per trajectory

    again = extract([eval_log], cast(Any, reader), store, [1, 2])
    assert again.done == [] and sorted(r.trajectory for r in again.cached) == names
    assert reader.passes == 2  # the cache: no pass

    quick = extract([eval_log], cast(Any, reader), store, [1, 2], max_steps=2)
    assert [r.steps for r in quick.done] == [[1, 2], [1, 2]]
    short = {r.trajectory: r for r in store.records()}[names[0]]
    assert short.key != records[names[0]].key
    # a causal reader sees the same first two steps in the cut and in the full trial
    np.testing.assert_array_equal(store.hidden(short), hidden[:2])


async def test_a_sample_that_is_not_a_bioblue_episode_is_skipped_alone(
    eval_log: Path, tmp_path: Path
) -> None:
    log = read_eval_log(str(eval_log))
    assert log.samples is not None
    other = next(s for s in log.samples if s.id == "seed-2")
    other.metadata = {k: v for k, v in other.metadata.items() if k != "runaway_environment"}
    mixed = tmp_path / "mixed.eval"
    write_eval_log(log, str(mixed))
    found = load_conversations(mixed)
    (first,) = [c for c in found if isinstance(c, Conversation)]
    (second,) = [c for c in found if isinstance(c, ConversationError)]
    assert first.name == "mixed.eval#seed-1"
    assert second.source == f"{mixed}#seed-2"
    assert "not a runaway_monitor task's sample" in str(second)
    report = extract([mixed], cast(Any, FakeReader()), MirrorStore(tmp_path / "s"), [1])
    assert [r.trajectory for r in report.done] == ["mixed.eval#seed-1"]
    assert [p for p, _ in report.skipped] == [f"{mixed}#seed-2"]
    with pytest.raises(ConversationError, match="holds samples: use load_conversations"):
        load_conversation(mixed)


async def test_without_inspect_ai_an_eval_log_is_skipped_with_the_install_hint(
    eval_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import fails
    report = extract([eval_log], cast(Any, FakeReader()), MirrorStore(tmp_path), [1])
    assert report.done == []
    ((path, reason),) = report.skipped
    assert path == str(eval_log) and "pip install 'runaway-monitor[inspect]'" in reason


async def test_the_probe_scores_the_hazard_of_an_inspect_sample(
    eval_log: Path, tmp_path: Path
) -> None:
    store = MirrorStore(tmp_path)
    report = extract([eval_log], cast(Any, FakeReader()), store, [1])
    (record,) = [r for r in report.done if r.trajectory.endswith("#seed-2")]
    hazard = hazard_of(record)
    assert sorted(hazard) == list(range(1, STEPS + 1))
    # the detectors' scorer on the sample's steps: the report's verdicts carry the same
    log = read_eval_log(str(eval_log))
    sample = next(s for s in log.samples or [] if s.id == "seed-2")
    events, _ = sample_events(sample, log.eval.model)
    verdicts = {e.step: e.hazard for e in events if isinstance(e, Verdict)}
    assert hazard == pytest.approx(verdicts)


async def test_the_command_reads_an_eval_log_and_prints_seconds_per_trajectory(
    eval_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(reader_module, "MirrorReader", FakeReader)
    out = tmp_path / "states"
    argv = ["mirror", "extract", str(eval_log), "--layers", "1,2", "--out", str(out)]
    assert cli([*argv, "--max-steps", "2", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["model"] == "smollm2" and summary["max_steps"] == 2
    assert [row["steps"] for row in summary["extracted"]] == [2, 2]
    assert summary["seconds_per_trajectory"] > 0 and summary["load_seconds"] >= 0
    per = [row["seconds"] for row in summary["extracted"]]
    assert summary["seconds_per_trajectory"] == pytest.approx(sum(per) / 2, abs=1e-5)

    assert cli(argv) == 0  # the full trials, as text
    text = capsys.readouterr().out
    assert "2 extracted, 0 cached, 0 skipped" in text and "s per trajectory" in text

    assert cli([*argv, "--json"]) == 0  # all cached: nothing was timed
    cached = orjson.loads(capsys.readouterr().out)
    assert cached["seconds_per_trajectory"] is None and len(cached["cached"]) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be at least 1, not 0"),
        ("-3", "must be at least 1, not -3"),
        ("x", "not a whole number: 'x'"),
    ],
)
def test_max_steps_must_be_a_positive_whole_number(
    value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["mirror", "extract", "t.tsv", "--out", str(tmp_path), "--max-steps", value])
    assert exited.value.code == 2
    assert f"argument --max-steps: {message}" in capsys.readouterr().err


def test_the_mirror_commands_never_import_inspect_ai_for_other_trajectories() -> None:
    code = (
        "import sys\n"
        "import monitor.commands.mirror, monitor.analysis.mirror.extract\n"
        "import monitor.analysis.mirror.study, monitor.analysis.mirror.plot\n"
        "from monitor.analysis.mirror.conversation import load_conversations\n"
        "from pathlib import Path\n"
        "data = Path('workers/data/bioblue')\n"
        "tsv = next(data.glob('multiobjective-homeostasis_gpt-4o-mini_*.tsv'))\n"
        "assert load_conversations(tsv, 3)[0].steps == [1, 2, 3]\n"
        "assert 'inspect_ai' not in sys.modules, 'a TSV made the mirror import inspect_ai'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
