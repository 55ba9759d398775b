"""The report's research sections on small constructed inputs: the post-flip battery
pooled over autopsies (pre/post with intervals) and the mirror model's probes and plots."""

from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.probes import ProbeAnswer, compare
from monitor.experiments.report_research import battery_section, mirror_section


def _autopsy(pairs: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """An autopsy's probes block: item id -> (pre score, post score)."""
    category = {"harm": "ethics", "jb": "jailbreak"}

    def answers(which: int) -> list[ProbeAnswer]:
        return [
            ProbeAnswer(i, category[i], "", scores[which], [], "likert")
            for i, scores in pairs.items()
        ]

    return {"probes": {"items": compare(answers(0), answers(1))}}


def _table(lines: list[str]) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| ") and not line.startswith("| level") and "---" not in line
    ]


def test_battery_section_tabulates_pooled_differences_with_intervals() -> None:
    autopsies = [
        _autopsy({"harm": (1, 4), "jb": (1, 0)}),
        _autopsy({"harm": (2, 3), "jb": (1, 1)}),
        _autopsy({"harm": (2, 2), "jb": (None, 0)}),
    ]
    lines = battery_section(autopsies)
    assert "## Post-flip battery: paired differences" in lines
    assert "| level | name | n | mean post - pre [95% CI] |" in lines
    rows = {(r[0], r[1]): r for r in _table(lines)}
    assert sorted(rows) == [
        ("category", "ethics"),
        ("category", "jailbreak"),
        ("item", "harm"),
        ("item", "jb"),
    ]
    n, cell = rows[("item", "harm")][2:]
    assert n == "3" and cell.startswith("1.33 [")
    low, high = (float(v) for v in cell.split("[")[1].rstrip("]").split(","))
    assert 0 <= low <= 4 / 3 <= high <= 3
    assert rows[("item", "jb")][2:] == ["2", "-0.50 [-1.00, 0.00]"]


def test_battery_section_is_empty_without_a_scored_pair() -> None:
    assert battery_section([]) == []
    assert battery_section([{"probes": None}, _autopsy({"harm": (None, 3)})]) == []
    one = battery_section([_autopsy({"harm": (2, 5)})])
    assert "| item | harm | 1 | 3.00 [3.00, 3.00] |" in one


def _probe_result() -> dict[str, Any]:
    return {
        "model": "smollm2",
        "mode": "grouped-cv",
        "layers": [
            {
                "layer": 4,
                "auc_state": 0.91234,
                "auc_state_ci": [0.8, 0.99],
                "auc_within_10": 0.5,
                "auc_within_10_ci": [0.3, 0.7],
            },
            {
                "layer": 8,
                "auc_state": None,
                "auc_state_ci": [None, None],
                "auc_within_10": 0.62,
                "auc_within_10_ci": [None, None],
            },
        ],
        "hazard_auc_within_10": 0.7,
        "hazard_auc_within_10_ci": [0.55, 0.82],
    }


def _results(tmp_path: Path, probe: bytes | None, plots: int) -> Path:
    root = tmp_path / "RESULTS"
    folder = root / "mirror"
    (folder / "plots").mkdir(parents=True)
    if probe is not None:
        (folder / "probe.json").write_bytes(probe)
    for i in range(plots):
        (folder / "plots" / f"t{i:02d}.png").write_bytes(b"\x89PNG")
    return root


def test_mirror_section_shows_the_probe_table_and_the_plots(tmp_path: Path) -> None:
    root = _results(tmp_path, orjson.dumps(_probe_result()), plots=2)
    lines = mirror_section(root, root / "runaway-report")
    assert lines[:3] == ["", "## Mirror model", ""]
    text = "\n".join(lines)
    assert "Linear probes on smollm2's hidden states (grouped-cv)" in text
    assert "| 4 | 0.91 [0.80, 0.99] | 0.50 [0.30, 0.70] |" in lines
    assert "| 8 | – | 0.62 |" in lines  # undefined AUC, undefined interval
    assert "Behavioural hazard, flip within 10: 0.70 [0.55, 0.82]." in lines
    # plots outside the report's folder are linked by their own path, those under it
    # relative to it
    images = [line for line in lines if line.startswith("![")]
    plots = root / "mirror" / "plots"
    assert images == [
        f"![mirror projection: {n}]({(plots / f'{n}.png').as_posix()})" for n in ("t00", "t01")
    ]
    relative = mirror_section(root, root)
    assert "![mirror projection: t00](mirror/plots/t00.png)" in relative


def test_mirror_section_with_plots_only_caps_them_and_without_either_is_empty(
    tmp_path: Path,
) -> None:
    root = _results(tmp_path, None, plots=15)
    lines = mirror_section(root, root)
    assert sum(line.startswith("![") for line in lines) == 12
    assert not any("Linear probes" in line for line in lines)
    assert mirror_section(tmp_path / "elsewhere", tmp_path) == []
    empty = _results(tmp_path / "b", None, plots=0)
    assert mirror_section(empty, empty) == []


def test_a_broken_probe_result_is_reported_not_raised(tmp_path: Path) -> None:
    bodies = (b"{not json", b'{"layers": [{"auc_state": 0.5}]}', b"[1, 2]")
    for i, body in enumerate(bodies):
        root = _results(tmp_path / str(i), body, plots=0)
        lines = mirror_section(root, root)
        assert any("probe.json` could not be read" in line for line in lines), lines
        assert not any(line.startswith("| ") for line in lines)
