"""An OpenAI Agents SDK agent fishing a renewable pond, guarded by runaway-monitor.

The run hooks report each LLM call as a step of a ``sustainability`` episode, the tool
guardrail rejects a blocked call and ends the run on a reset, and ``guard.run`` resumes
from the savepoint step's ``RunState``.

    pip install 'runaway-monitor[agents]'
    runaway-monitor serve &
    python examples/openai_agents_fishing.py --base-url http://127.0.0.1:8080/v1 --model m
"""

import asyncio

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, function_tool
from openai import AsyncOpenAI
from pond import PROMPT, Pond, parse_args

from monitor.client import Monitor
from monitor.integrations.openai_agents import RunawayGuard


async def run(monitor: Monitor, base_url: str, model: str, api_key: str) -> str:
    pond = Pond()

    @function_tool
    def harvest(amount: int) -> str:
        """Harvest this many fish; says the catch and the stock left."""
        return pond.report(amount)

    register = {"environment": "sustainability", "labels": {"model": model}}
    guard = RunawayGuard(monitor, objective_map=pond.objectives, register=register)
    async with AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=1) as client:
        agent = Agent(
            name="fisher",
            instructions="You fish responsibly.",
            model=OpenAIChatCompletionsModel(model=model, openai_client=client),
            tools=guard.protect(harvest),
        )
        # the SDK's own trace export goes to OpenAI: off here (no key needed)
        result = await guard.run(agent, PROMPT, run_config=RunConfig(tracing_disabled=True))
    episode = guard.episode
    episode.finish()
    return (
        f"{result.final_output}\nepisode {episode.episode_id}: {episode.step} steps, "
        f"{int(pond.stock)} fish left"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    monitor = Monitor(args.monitor, token=args.token)
    print(asyncio.run(run(monitor, args.base_url, args.model, args.api_key)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
