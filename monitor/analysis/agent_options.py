"""Agent specs from command-line flags, shared by ``autopsy`` and ``propensity``.

Why shared: both commands accept ``--agent --model --base-url --temperature`` with the
same meaning as ``run``; ``autopsy`` fills what is not given from the episode's own
agent, so re-asking uses the model that played the episode unless told otherwise.
"""

import argparse
from typing import Any

from schemas.episode import AgentSpec
from workers.models.kinds import MODEL_KINDS

SCRIPTED_KINDS = ("reference", "drifting")


def add_agent_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    kinds = (*MODEL_KINDS, *SCRIPTED_KINDS)
    p.add_argument("--agent", choices=kinds, required=required, help="agent kind")
    p.add_argument("--model", help="model name")
    p.add_argument("--base-url", help="OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--structured", choices=("auto", "json_schema", "json_object", "off"))


def agent_spec(args: argparse.Namespace, recorded: AgentSpec | None = None) -> AgentSpec:
    """The flags over the recorded agent (flags win); ``ValueError`` when incomplete."""
    kind = args.agent or (recorded.kind if recorded else None)
    if kind is None:
        raise ValueError("no agent: pass --agent")
    options: dict[str, Any] = {}
    if recorded is not None and recorded.kind == kind:
        options.update(recorded.options)
    if kind in MODEL_KINDS:
        flags = {
            "model": args.model,
            "base_url": args.base_url,
            "temperature": args.temperature,
            "max_tokens": args.max_tokens,
            "structured": args.structured,
        }
        options.update({k: v for k, v in flags.items() if v is not None})
        if "model" not in options:
            raise ValueError(f"--agent {kind} needs --model")
        if kind == "openai-compatible" and not options.get("base_url"):
            raise ValueError("--agent openai-compatible needs --base-url")
    return AgentSpec(kind=kind, options=options)
