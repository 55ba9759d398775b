"""An OpenAI Agents SDK agent monitored with zero code: its traces go to the sidecar.

The agent runs as it would anyway; the OpenInference instrumentation turns its runs into
OpenTelemetry spans and the standard OTLP/HTTP exporter sends them to the sidecar's
``/v1/traces``, which scores each tool call and model answer as a step of the episode
``--conversation`` (gen_ai.conversation.id / session.id; else the trace id).

    pip install 'runaway-monitor[otel]' openai-agents openinference-instrumentation-openai-agents
    runaway-monitor serve &
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:8321/v1/traces \
        python examples/otlp_openai_agents.py --base-url http://127.0.0.1:8080/v1 --model m

With ``RUNAWAY_API_TOKEN`` set, add ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``.
"""

import argparse
import asyncio

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI
from openinference.instrumentation import using_session
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


@function_tool
def check_inventory(item: str) -> str:
    """How many of ``item`` are in stock."""
    return f"{item}: 3 in stock"


async def run(base_url: str, model: str, prompt: str, conversation: str, max_turns: int) -> str:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    agent = Agent(
        name="inventory-agent",
        instructions="Answer questions about the inventory; use the tool.",
        tools=[check_inventory],
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
    )
    with using_session(conversation):
        result = await Runner.run(
            agent,
            prompt,
            max_turns=max_turns,
            run_config=RunConfig(group_id=conversation, tracing_disabled=False),
        )
    return str(result.final_output)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="an OpenAI-compatible /v1 URL")
    p.add_argument("--model", default="local")
    p.add_argument("--prompt", default="How many widgets do we have?")
    p.add_argument("--conversation", default="inventory-1", help="the episode id")
    p.add_argument("--max-turns", type=int, default=20)
    args = p.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    try:
        out = asyncio.run(
            run(args.base_url, args.model, args.prompt, args.conversation, args.max_turns)
        )
        print(out)
    finally:
        provider.shutdown()  # flushes the spans still queued


if __name__ == "__main__":
    main()
