"""Sample efficiency: does training on k corrected episodes remove the flip, and how fast?

For the base model and for every tuned model (corrective at each k, the innocuous
baseline at each k, same training budget), served through the llama.cpp
OpenAI-compatible route:
- **sanity**: on its own training windows, the share of trained turns at which the served
  model now answers exactly the trained text (the reference action, or the baseline's
  ``Answer: ...`` format);
- **propensity**: the flip rate, with a Wilson 95% interval, on the held-out split's
  starting conditions, played through the full pipeline (mitigation ``none``);
- **format rate**: the share of held-out answers in the baseline's fixed format, so the
  two behaviours' learning curves compare on the same k axis.
Each model's result is kept in ``OUT/eval/<name>.json``; a rerun reuses them.
"""

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from monitor.analysis.propensity import build_specs, measure
from monitor.finetune.data import FORMAT_PREFIX, Subset, innocuous_examples
from monitor.finetune.serving import llama_server
from schemas.episode import AgentSpec
from schemas.settings import Settings


@dataclass(frozen=True, slots=True)
class Served:
    name: str  # "base", "corrective-k008", "innocuous-k008"
    variant: str
    k: int
    lora: Path | None


@dataclass(frozen=True, slots=True)
class EvalPlan:
    conditions: list[dict[str, Any]]
    trials: int
    steps: int | None
    temperature: float
    seed: int
    structured: str = "auto"


def sanity_cases(subset: Subset, card: dict[str, Any], variant: str) -> list[tuple[list, str]]:
    """(prompt, trained answer) at every trained turn of the subset's training windows."""
    examples = innocuous_examples(subset.examples) if variant == "innocuous" else subset.examples
    cases = []
    for messages, entry in zip(examples, card["examples"], strict=True):
        first, last = entry["window_messages"]
        window = [messages[0], *messages[first : last + 1]]
        for i, m in enumerate(window):
            if m["role"] == "assistant" and m.get("weight", 1):
                prompt = [{"role": x["role"], "content": x["content"]} for x in window[:i]]
                cases.append((prompt, m["content"]))
    return cases


async def _answer(session: aiohttp.ClientSession, url: str, prompt: list, seed: int) -> str:
    body = {"model": "tuned", "messages": prompt, "temperature": 0.0, "max_tokens": 16,
            "seed": seed}  # fmt: skip
    async with session.post(f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        data = await response.json()
    return str(data["choices"][0]["message"]["content"] or "").strip()


async def sanity(url: str, cases: list[tuple[list, str]], seed: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        answers = [await _answer(session, url, prompt, seed) for prompt, _ in cases]
    hits = sum(a == expected.strip() for a, (_, expected) in zip(answers, cases, strict=True))
    return {"turns": len(cases), "matched": hits, "rate": hits / len(cases) if cases else None,
            "answers": answers[:20]}  # fmt: skip


def format_rate(log_dir: Path) -> dict[str, Any]:
    """The share of the logged answers written in the baseline's fixed format."""
    total = hits = 0
    for log in sorted(log_dir.glob("*.jsonl")):
        for line in log.read_bytes().splitlines():
            event = orjson.loads(line)
            if event.get("kind") == "step" and isinstance(event.get("text"), str):
                total += 1
                hits += event["text"].strip().startswith(FORMAT_PREFIX.strip())
    return {"answers": total, "formatted": hits, "rate": hits / total if total else None}


async def evaluate(
    served: Served,
    gguf: Path,
    plan: EvalPlan,
    cases: list[tuple[list, str]],
    settings: Settings,
    stop: asyncio.Event,
    out: Path,
) -> dict[str, Any]:
    """Serve one model, run the sanity check and the held-out propensity; kept on disk."""
    path = out / "eval" / f"{served.name}.json"
    if path.is_file():
        return dict(orjson.loads(path.read_bytes())) | {"reused": True}
    logs = out / "eval" / served.name
    logs.mkdir(parents=True, exist_ok=True)
    async with llama_server(gguf, served.lora, log=out / "eval" / "server.log") as url:
        checked = await sanity(url, cases, plan.seed) if cases else None
        options = {"model": served.name, "base_url": url, "temperature": plan.temperature,
                   "max_tokens": 16, "seed": plan.seed, "structured": plan.structured,
                   "timeout_s": 120}  # fmt: skip
        agent = AgentSpec(kind="openai-compatible", options=options)
        specs = build_specs(plan.conditions, agent, f"se-{served.name}", plan.trials,
                            "none", plan.steps, label=served.name)  # fmt: skip
        run_id = f"se-{served.name}-{uuid.uuid4().hex[:6]}"
        result = await measure(settings, specs, stop, run_id=run_id, log_dir=logs)
    record = {"name": served.name, "variant": served.variant, "k": served.k,
              "sanity": checked, "propensity": result, "format": format_rate(logs)}  # fmt: skip
    if not result.get("interrupted"):
        path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    return record
