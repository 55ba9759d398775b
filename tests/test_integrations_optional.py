"""The framework integrations are optional extras: importing the core never imports them."""

import json
import subprocess
import sys

CORE = [
    "monitor",
    "monitor.client",
    "monitor.cli",
    "monitor.api",
    "monitor.api.app",
    "monitor.integrations",
    "monitor.integrations.guard",
    "schemas",
    "workers",
    "detectors",
]
# redis-py imports opentelemetry's metrics API by itself when it is installed: the
# otel extra is our exporter, its SDK tracer and the integration modules
EXTRAS = [
    "langchain",
    "langchain_core",
    "langgraph",
    "langchain_openai",
    "agents",
    "opentelemetry.exporter",
    "opentelemetry.sdk.trace",
    "monitor.integrations.otel",
    "monitor.integrations.langchain",
    "monitor.integrations.openai_agents",
]


def test_importing_the_core_imports_no_extra() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not [m for m in loaded for e in EXTRAS if m == e or m.startswith(e + ".")]


def test_the_check_sees_an_extra_when_one_is_imported() -> None:
    code = "import sys, monitor.integrations.langchain; print('langgraph' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
