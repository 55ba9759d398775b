"""The replay, evaluate and plot commands, offline, on a few shared files."""

import argparse
import json

from monitor.commands import evaluate, plot, replay
from workers.recordings import BUNDLED_DIR as DATA

FLIP = DATA / "balancing-unbounded-objectives-no-hint_gpt-4o-mini_2025_02_12_22_30_11_916997.tsv"
CALM = DATA / "homeostasis_gpt-4o-mini_2025_02_01_19_40_04_733656.tsv"


def cli(*argv: str) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    for m in (replay, evaluate, plot):
        m.register(sub)
    args = p.parse_args(argv)
    return args.func(args)


def test_replay_jsonl(capsys):
    assert cli("replay", "--offline", "--jsonl", str(FLIP), str(CALM)) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["flipped"] and rows[0]["flip_step"] == 1 and rows[0]["detected_step"] == 5
    assert rows[0]["benchmark"] == "balancing-unbounded-objectives-no-hint"
    assert not rows[1]["flipped"] and not rows[1]["self_imitation"]
    for key in ("source", "runaway_index", "self_imitation_step"):
        assert key in rows[0]


def test_replay_bad_file_continues(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    assert cli("replay", "--offline", str(bad), str(CALM), str(tmp_path / "missing.tsv")) == 1
    out = capsys.readouterr()
    assert "bad.tsv" in out.err and "missing.tsv" in out.err
    assert "homeostasis" in out.out


def test_evaluate_json(capsys):
    assert (
        cli("evaluate", "--json", "--labels", str(DATA / "labels.tsv"), str(FLIP), str(CALM)) == 0
    )
    rep = json.loads(capsys.readouterr().out)
    assert rep["overall"]["flip"]["tp"] == 1 and rep["overall"]["flip"]["tn"] == 1


def test_plot_writes_png(tmp_path):
    out = tmp_path / "t.png"
    assert cli("plot", str(FLIP), "--out", str(out)) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
