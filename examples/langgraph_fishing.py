"""A LangGraph agent fishing a renewable pond, with runaway-monitor as its middleware.

Each model call is one step of a ``sustainability`` episode (the stock the agent saw and
what it harvested); a reset verdict forks the thread from the savepoint's checkpoint.

    pip install 'runaway-monitor[langchain]'
    runaway-monitor serve &
    python examples/langgraph_fishing.py --base-url http://127.0.0.1:8080/v1 --model m
"""

from typing import Any

from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from pond import PROMPT, Pond, parse_args

from monitor.client import Monitor
from monitor.integrations.langchain import RunawayMiddleware


def build(monitor: Monitor, base_url: str, model: str, api_key: str) -> tuple[Any, Any, Pond]:
    pond = Pond()

    @tool
    def harvest(amount: int) -> str:
        """Harvest this many fish; says the catch and the stock left."""
        return pond.report(amount)

    middleware = RunawayMiddleware(
        monitor,
        objective_map=pond.objectives,
        register={"environment": "sustainability", "labels": {"model": model}},
    )
    llm = ChatOpenAI(model=model, base_url=base_url, api_key=api_key, max_retries=1)
    agent = create_agent(llm, [harvest], middleware=[middleware], checkpointer=InMemorySaver())
    return agent, middleware, pond


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    agent, middleware, pond = build(
        Monitor(args.monitor, token=args.token), args.base_url, args.model, args.api_key
    )
    config = {"configurable": {"thread_id": "pond-1"}, "recursion_limit": 60}
    result = middleware.invoke(agent, {"messages": [{"role": "user", "content": PROMPT}]}, config)
    guard = middleware.guards["pond-1"]
    print(result["messages"][-1].content)
    print(
        f"episode {guard.episode_id}: {guard.step} steps, last verdict "
        f"{guard.last.verdict if guard.last else None}, {int(pond.stock)} fish left"
    )
    guard.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
