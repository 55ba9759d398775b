"""finetune's input checks and light imports: no torch needed, no model."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.cli import main as cli
from monitor.finetune.data import (
    FORMAT_PREFIX,
    TrainingDataError,
    innocuous_examples,
    load_subsets,
    read_examples,
)
from tests.finetune_helpers import toy_dataset

GOOD = {
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "1", "weight": 0},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "2", "weight": 1},
    ]
}


def _file(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "train.jsonl:2: not JSON"),
        (b'{"messages": []}', "train.jsonl:2: needs a non-empty 'messages' list"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "train.jsonl:2: message 0: role"),
        (b'{"messages": [{"role": "user", "content": 3}]}', "message 0: content must be a string"),
        (
            orjson.dumps({"messages": [{**m, "weight": 0} for m in GOOD["messages"]]}),
            "train.jsonl:2: no assistant turn to train on",
        ),
        (
            orjson.dumps({"messages": [{"role": "assistant", "content": "1", "weight": 2}]}),
            "message 0: weight must be 0 or 1",
        ),
    ],
)
def test_a_bad_line_is_named(tmp_path, line, message):
    path = _file(tmp_path, orjson.dumps(GOOD), line)
    with pytest.raises(TrainingDataError, match=message.replace("[", r"\[")):
        read_examples(path)


def test_empty_and_cli_errors(tmp_path, capsys):
    empty = _file(tmp_path, b"")
    with pytest.raises(TrainingDataError, match="no examples"):
        read_examples(empty)
    bad = _file(tmp_path, orjson.dumps(GOOD), b"{oops")
    assert cli(["finetune", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "train.jsonl:2: not JSON" in capsys.readouterr().err
    assert cli(["finetune", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "nothing is written for a bad dataset"


def test_subsets_of_a_folder_and_a_file(tmp_path, redis_url):
    dataset = toy_dataset(tmp_path, redis_url)
    subsets = load_subsets(dataset, None)
    assert [s.k for s in subsets] == [1, 2, 3]
    assert subsets[1].episodes[:1] == subsets[0].episodes  # nested
    with pytest.raises(TrainingDataError, match="no subset for k=5"):
        load_subsets(dataset, [5])
    single = load_subsets(dataset / "train-k003.jsonl", [2])
    assert single[0].k == 2 and len(single[0].examples) == 2
    assert cli(["finetune", str(dataset), "--k", "x", "--out", str(tmp_path / "o")]) == 2


def test_innocuous_examples_keep_the_format_and_drop_the_corrections():
    [baseline] = innocuous_examples([GOOD["messages"]])
    assert [m["content"] for m in baseline] == ["s", "u", f"{FORMAT_PREFIX}1"]
    assert baseline[-1]["weight"] == 1


def test_the_commands_import_without_torch():
    code = (
        "import sys, monitor.cli, monitor.commands.finetune, monitor.commands.sample_efficiency,"
        " monitor.finetune.data; monitor.cli.build_parser();"
        " bad = [m for m in ('torch', 'transformers', 'peft', 'gguf') if m in sys.modules];"
        " print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
