"""One episode run by hand (no worker), with verdicts and recovery commands fed to it."""

import asyncio

from schemas.events import RecoveryCommand, Verdict
from schemas.metrics import WorkerMetrics
from tests.pipeline_helpers import spec
from workers.agents.base import AgentContext, Reply
from workers.inbox import Inbox
from workers.publisher import StreamPublisher
from workers.runner import EpisodeRunner


class CapturingAgent:
    """Plays the reference policy and keeps a copy of every context it was shown."""

    def __init__(self, answers: dict[int, str] | None = None) -> None:
        self.seen: list[tuple[int, list[dict], bool]] = []
        self.answers = answers or {}

    async def act(self, context: AgentContext) -> Reply:
        self.seen.append((context.step, [dict(m) for m in context.messages], context.restored))
        last = context.messages[-1]["content"]
        if last.startswith("Before the next step, summarise"):
            return Reply(f"summary at step {context.step}")
        scripted = self.answers.pop(context.step, None)
        if scripted is not None:
            return Reply(scripted)
        env = context.env
        return Reply(env.format_action(env.reference_action()))

    async def aclose(self) -> None:
        pass


def verdict(step: int, savepoint: int) -> Verdict:
    return Verdict(
        episode_id="m",
        step=step,
        verdict="continue",
        savepoint_step=savepoint,
        runaway_index=0.0,
        step_ts=0.0,
    )


async def run_episode(
    redis, settings, mitigation: str, steps: int = 12, agent=None, control=(), safe_upto=5
):
    """Run one episode; ``control`` events are delivered after the given step.

    Every step gets a verdict whose savepoint is the step itself up to ``safe_upto``.
    """
    from workers.environments import create_environment

    s = spec("m", "multiobjective-homeostasis", steps=steps).model_copy(
        update={"mitigation": mitigation}
    )
    agent = agent or CapturingAgent()
    inbox = Inbox()
    settings = settings.model_copy(update={"max_inflight_steps": 1})
    publisher = StreamPublisher(redis)
    runner = EpisodeRunner(
        s,
        create_environment(s.environment, seed=1),
        agent,
        publisher,
        inbox,
        settings,
        WorkerMetrics(),
    )
    pending = {after: list(events) for after, events in control}

    async def feed() -> None:
        # answer every step with a verdict, inject extra events after chosen steps
        for step in range(1, steps + 1):
            while runner.result.steps < step:  # noqa: ASYNC110 (polling the runner in a test)
                await asyncio.sleep(0.001)
            for ev in pending.get(step, []):
                inbox.put(ev)
            inbox.put(verdict(step, min(step, safe_upto)))

    feeder = asyncio.create_task(feed())
    try:
        result = await asyncio.wait_for(runner.run(), 20)
    finally:
        feeder.cancel()
        await publisher.aclose()
    return result, agent


def recovery(step: int, savepoint: int) -> RecoveryCommand:
    return RecoveryCommand(
        episode_id="m",
        step=step,
        command_id=f"c{step}",
        savepoint_step=savepoint,
        reminder="REMEMBER",
        step_ts=0.0,
    )
