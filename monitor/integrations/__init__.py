"""Framework integrations: LangChain/LangGraph, the OpenAI Agents SDK, OpenTelemetry.

Each lives in its own module and imports its framework only there, so importing
``monitor`` (or this package) never pulls in an optional extra. Install the extra named
in the module's docstring (``pip install 'runaway-monitor[langchain]'``, ``[agents]``,
``[otel]``).
"""
