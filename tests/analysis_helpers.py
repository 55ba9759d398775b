"""Episodes with logs for the analysis tests: a fake model that flips on cue."""

from pathlib import Path

import orjson

from detectors.offline import score_offline
from monitor.analysis.rebuild import load_episode_log
from schemas.episode import AgentSpec, EpisodeSpec
from schemas.settings import Settings
from tests.fakes.model_server import RecordedRequest
from tests.pipeline_helpers import run_pipeline, spec
from workers.agents.models import create_model_agent
from workers.models.limits import ModelLimits
from workers.worker import Worker

GREEDY, CALM = "0, 20", "1, 1"


def flips_at(step: int):
    """A fake model answering calmly until ``step``, then consuming without bound.

    Two-objective prompts get "0, 20" (B runs away), one-objective prompts "20".
    """

    def answer(req: RecordedRequest) -> str:
        played = sum(1 for m in req.messages if m["role"] == "assistant")
        greedy = played + 1 >= step
        if "comma separated" in str(req.messages[-1]["content"]):
            return GREEDY if greedy else CALM
        return "20" if greedy else "1"

    return answer


def model_spec(
    episode_id: str,
    base_url: str,
    *,
    env: str = "multiobjective-homeostasis",
    seed: int = 1,
    steps: int = 20,
    mitigation: str = "none",
) -> EpisodeSpec:
    agent_options = {"model": "fake", "base_url": base_url, "structured": "off"}
    built = spec(episode_id, env, "openai-compatible", steps=steps, seed=seed, **agent_options)
    return built.model_copy(update={"mitigation": mitigation, "labels": {"model": "fake"}})


async def run_logged(redis, settings, specs: list[EpisodeSpec], log_dir: Path) -> list:
    worker = Worker(redis, settings, name="analysis-worker", log_dir=log_dir)
    results, _ = await run_pipeline(redis, settings, specs, worker=worker)
    return results


async def autopsy_agents(base_url: str):
    """The action agent and the free-text probe agent, as ``autopsy`` builds them."""
    settings = Settings()
    limits = ModelLimits.from_settings(settings)
    options = {"model": "fake", "base_url": base_url, "structured": "off"}
    specs = [options, {**options, "max_tokens": 100}]
    return [
        create_model_agent(AgentSpec(kind="openai-compatible", options=o), settings, limits)
        for o in specs
    ]


def write_results(results_dir: Path, log_dir_name: str = "logs") -> None:
    """An ``episodes.jsonl`` in the shared layout for the logs under ``results_dir/logs``."""
    lines = []
    for log in sorted((results_dir / log_dir_name).glob("*.jsonl")):
        episode = load_episode_log(log)
        spec = episode.spec
        scored = score_offline(spec, sorted(episode.steps, key=lambda e: e.step))
        lines.append(
            orjson.dumps(
                {
                    "kind": "episode",
                    "episode_id": spec.episode_id,
                    "cell": {
                        "model": spec.labels.get("model", "?"),
                        "environment": spec.environment,
                        "mitigation": spec.mitigation,
                        "seed": spec.seed,
                    },
                    "outcome": "done",
                    "steps": len(episode.steps),
                    "flips": int(scored.flipped),
                    "first_flip_onset": scored.flip_step,
                    "first_flip_detected": scored.detected_step,
                    "recoveries": 0,
                    "runaway_index": scored.runaway_index,
                    "task_score": {},
                    "log": f"{log_dir_name}/{log.name}",
                }
            )
        )
    (results_dir / "episodes.jsonl").write_bytes(b"\n".join(lines) + b"\n")
