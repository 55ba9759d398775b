"""Model agents through the whole pipeline: workers, Redis, detectors, recovery.

The recovery must reach the model: the request after a RecoveryApplied carries the
restored history (only the steps up to the savepoint) and the reminder.
"""

import pytest

from schemas.episode import AgentSpec, EpisodeSpec
from schemas.metrics import WorkerMetrics
from tests.fakes.llama_server import LlamaServer
from tests.fakes.model_server import FakeModelServer, RecordedRequest, respond_with
from tests.pipeline_helpers import run_pipeline, stream_events
from workers.agents.base import AgentContext, Reply
from workers.environments.catalog import OBJECTIVES
from workers.worker import AgentBuilder, Worker


def model_spec(episode_id: str, base_url: str, steps: int, **options) -> EpisodeSpec:
    return EpisodeSpec(
        episode_id=episode_id,
        environment="multiobjective-homeostasis",
        objectives=OBJECTIVES["multiobjective-homeostasis"],
        seed=1,
        steps=steps,
        agent=AgentSpec(
            kind="openai-compatible", options={"model": "m", "base_url": base_url, **options}
        ),
        mitigation="savepoint-recovery",
    )


def greedy_for_b(req: RecordedRequest) -> str:
    """Calm at step 1 (so a safe savepoint exists and the flip is reset, not reminded),
    then feeds B without bound, unless the context carries a reminder of the objectives."""
    if not any(m["role"] == "assistant" for m in req.messages):
        return "1, 1"
    reminded = any("Reminder:" in str(m.get("content")) for m in req.messages)
    return "0, 0" if reminded else "0, 25"


async def test_recovery_reaches_the_model_requests(
    redis, settings, fake_model_server: FakeModelServer
):
    fake_model_server.default = respond_with(greedy_for_b)
    spec = model_spec("model-ep", fake_model_server.openai_base_url, steps=30, structured="off")
    (result,), _ = await run_pipeline(redis, settings, [spec])
    assert result.outcome == "done", result.error
    assert result.flips >= 1 and result.recoveries >= 1
    events = await stream_events(redis, settings.keys.steps(settings.keys.shard_of("model-ep")))
    applied = next(e for e in events if e.kind == "recovery_applied")
    steps = [e for e in events if e.kind == "step"]
    assert all(e.usage and e.usage["input_tokens"] > 0 for e in steps)  # usage per step
    # the first request after the recovery: restored history plus the reminder
    after = next(r for r in fake_model_server.requests if "Reminder:" in str(r.messages[-1]))
    roles = [m["role"] for m in after.messages]
    assert roles.count("assistant") == applied.savepoint_step
    assert len(after.messages) == 2 * applied.savepoint_step + 2
    assert all(m["content"] != "0, 25" for m in after.messages if m["role"] == "assistant")


class ContextRecorder:
    """Wraps an agent and keeps the length and last message of every context it got."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[int, int, str]] = []

    async def act(self, context: AgentContext) -> Reply:
        messages = context.messages
        self.calls.append((context.step, len(messages), str(messages[-1]["content"])))
        return await self.inner.act(context)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.smollm
async def test_real_model_flips_are_caught_and_recovered(
    redis, settings, smollm_server: LlamaServer
):
    specs = [
        model_spec(
            "smol-2",
            smollm_server.base_url,
            steps=16,
            temperature=0.0,
            max_tokens=32,
            seed=2,
            timeout_s=60,
        ).model_copy(update={"seed": 2})
    ]
    recorders: dict[str, ContextRecorder] = {}
    settings = settings.model_copy(update={"verdict_timeout_s": 120})
    builder = AgentBuilder(settings, WorkerMetrics())

    def factory(spec, env):
        recorders[spec.episode_id] = ContextRecorder(builder(spec, env))
        return recorders[spec.episode_id]

    worker = Worker(redis, settings, name="smol-worker", agent_factory=factory)
    results, _ = await run_pipeline(redis, settings, specs, worker=worker, timeout_s=400)
    assert all(r.outcome == "done" for r in results), [r.error for r in results]
    assert sum(r.flips for r in results) >= 1, "SmolLM2 is expected to over-feed a level"
    # a flip from step 1 has no safe savepoint: the policy reminds instead of resetting
    recovered = [r for r in results if r.recoveries or r.reminders]
    assert recovered
    for r in recovered:
        events = await stream_events(
            redis, settings.keys.steps(settings.keys.shard_of(r.episode_id))
        )
        for applied in [e for e in events if e.kind == "recovery_applied"]:
            _, length, last = next(c for c in recorders[r.episode_id].calls if c[0] > applied.step)
            assert last.startswith("Reminder:")  # the reminder reached the model
            kept = applied.savepoint_step if applied.action == "reset" else applied.step
            assert length == 2 * kept + 2  # and only the kept history (remind: all of it)
