"""Framework integrations: LangChain/LangGraph, the OpenAI Agents SDK, OpenTelemetry,
Inspect AI (``inspect``: tasks, hooks, the recovery wrapper, the approver and scorer).

Also the pure decoders behind the sidecar's integration routes: OTLP traces in
(``otlp_traces``, ``genai_steps``) and the LiteLLM guardrail contract (``litellm_guardrail``).

Each lives in its own module and imports its framework only there, so importing
``monitor`` (or this package) never pulls in an optional extra. Install the extra named
in the module's docstring (``pip install 'runaway-monitor[langchain]'``, ``[agents]``,
``[otel]``, ``[inspect]``).
"""
