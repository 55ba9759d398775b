"""Corrective dataset export round-trip: a small experiment with the fake model, exported."""

from pathlib import Path

import orjson

from monitor.analysis.dataset import load_conditions
from monitor.analysis.rebuild import load_episode_log
from monitor.analysis.splits import subset_sizes
from monitor.cli import main as cli
from tests.analysis_helpers import flips_at, model_spec, run_logged, write_results
from tests.fakes.model_server import FakeModelServer, respond_with
from workers.environments import create_environment

ENVS = ("homeostasis", "multiobjective-homeostasis")
SEEDS = (1, 2, 3, 4)


def test_subset_sizes():
    assert subset_sizes(0) == []
    assert subset_sizes(1) == [1]
    assert subset_sizes(4) == [1, 2, 4]
    assert subset_sizes(6) == [1, 2, 4, 6]


def _read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _check_example(example: dict, log: Path, onset: int) -> None:
    """Re-simulate independently: observations follow the answers, post-onset = reference."""
    episode = load_episode_log(log)
    spec = episode.spec
    steps = sorted(episode.steps, key=lambda e: e.step)
    env = create_environment(
        spec.environment, seed=spec.seed, noise_trace=[dict(e.noise or {}) for e in steps]
    )
    messages = example["messages"]
    assert messages[0]["role"] == "system"
    pairs = list(zip(messages[1::2], messages[2::2], strict=True))
    assert len(pairs) == len(steps)
    for step, (user, assistant) in enumerate(pairs, start=1):
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert user["content"] == env.observation_text()
        if step >= onset:
            assert assistant["content"] == env.format_action(env.reference_action())
            assert assistant["weight"] == 1
        else:
            assert assistant["content"] == steps[step - 1].text
            assert assistant["weight"] == 0
        env.step(env.parse_action(assistant["content"]))


async def test_export_round_trip(redis, settings, fake_model_server: FakeModelServer, tmp_path):
    fake_model_server.default = respond_with(flips_at(5))
    results = tmp_path / "results"
    specs = [
        model_spec(
            f"{env[:6]}-s{seed}", fake_model_server.openai_base_url, env=env, seed=seed, steps=14
        )
        for env in ENVS
        for seed in SEEDS
    ]
    await run_logged(redis, settings, specs, results / "logs")
    write_results(results)
    records = _read(results / "episodes.jsonl")
    assert sum(r["flips"] > 0 for r in records) == len(specs), "every episode must flip"

    out = tmp_path / "dataset"
    assert cli(["export-dataset", str(results), "--out", str(out)]) == 0
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["skipped"] == []
    rule = manifest["split_rule"]
    assert rule["heldout_environments"] == ["multiobjective-homeostasis"]
    assert rule["heldout_seeds"] == [4]

    by_id = {r["episode_id"]: r for r in records}
    # subsets: nested prefixes of one order, sizes 1, 2, 4, ...
    subsets = manifest["subsets"]
    assert [s["k"] for s in subsets] == [1, 2, 3]
    previous: list[str] = []
    for subset in subsets:
        lines = _read(out / subset["file"])
        assert len(lines) == subset["k"] == len(subset["episodes"])
        assert subset["episodes"][: len(previous)] == previous
        previous = subset["episodes"]
        for episode_id, example in zip(subset["episodes"], lines, strict=True):
            record = by_id[episode_id]
            _check_example(example, results / record["log"], record["first_flip_onset"])
    # held out: disjoint from training in episodes, environments and seeds
    train_ids = set(manifest["train_pool"])
    held_ids = set(manifest["heldout"]["episodes"])
    assert train_ids and held_ids and not train_ids & held_ids
    assert train_ids | held_ids == set(by_id)
    train_cells = [by_id[i]["cell"] for i in train_ids]
    assert all(c["environment"] not in rule["heldout_environments"] for c in train_cells)
    assert all(c["seed"] not in rule["heldout_seeds"] for c in train_cells)
    held_cells = [by_id[i]["cell"] for i in held_ids]
    assert all(
        c["environment"] in rule["heldout_environments"] or c["seed"] in rule["heldout_seeds"]
        for c in held_cells
    )
    held_lines = _read(out / "heldout.jsonl")
    assert len(held_lines) == len(held_ids)
    conditions = load_conditions(out / "heldout.jsonl")
    assert {(c["environment"], c["seed"]) for c in conditions} == {
        (c["environment"], c["seed"]) for c in held_cells
    }
