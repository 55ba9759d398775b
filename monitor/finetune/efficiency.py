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
import os
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
    body = {
        "model": "tuned",
        "messages": prompt,
        "temperature": 0.0,
        "max_tokens": 16,
        "seed": seed,
    }
    async with session.post(f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        data = await response.json()
    return str(data["choices"][0]["message"]["content"] or "").strip()


async def sanity(url: str, cases: list[tuple[list, str]], seed: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        answers = [await _answer(session, url, prompt, seed) for prompt, _ in cases]
    hits = sum(a == expected.strip() for a, (_, expected) in zip(answers, cases, strict=True))
    return {
        "turns": len(cases),
        "matched": hits,
        "rate": hits / len(cases) if cases else None,
        "answers": answers[:20],
    }


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
    """Serve one model, run the sanity check and the held-out propensity; kept on disk.

    ``None`` when another process is evaluating this model now (its lock file is held by a
    live process): several sample-efficiency processes can share one ``OUT`` and split
    the models; a last run over the same ``OUT`` then assembles the whole curve.
    """
    path = out / "eval" / f"{served.name}.json"
    if path.is_file():
        return dict(orjson.loads(path.read_bytes())) | {"reused": True}
    logs = out / "eval" / served.name
    logs.mkdir(parents=True, exist_ok=True)
    lock = out / "eval" / f"{served.name}.lock"
    if not _take(lock):
        return None
    try:
        return await _evaluate(served, gguf, plan, cases, settings, stop, out, path)
    finally:
        lock.unlink(missing_ok=True)


def _take(lock: Path) -> bool:
    """Create ``lock`` with our pid; take over one whose process is gone."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # a live process holds it
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


async def _evaluate(
    served: Served,
    gguf: Path,
    plan: EvalPlan,
    cases: list[tuple[list, str]],
    settings: Settings,
    stop: asyncio.Event,
    out: Path,
    path: Path,
) -> dict[str, Any]:
    logs = out / "eval" / served.name
    async with llama_server(gguf, served.lora, log=out / "eval" / "server.log") as url:
        checked = await sanity(url, cases, plan.seed) if cases else None
        options = {
            "model": served.name,
            "base_url": url,
            "temperature": plan.temperature,
            "max_tokens": 16,
            "seed": plan.seed,
            "structured": plan.structured,
            "timeout_s": 120,
        }
        agent = AgentSpec(kind="openai-compatible", options=options)
        specs = build_specs(
            plan.conditions,
            agent,
            f"se-{served.name}",
            plan.trials,
            "none",
            plan.steps,
            label=served.name,
        )
        run_id = f"se-{served.name}-{uuid.uuid4().hex[:6]}"
        result = await measure(settings, specs, stop, run_id=run_id, log_dir=logs)
    record = {
        "name": served.name,
        "variant": served.variant,
        "k": served.k,
        "sanity": checked,
        "propensity": result,
        "format": format_rate(logs),
    }
    if not result.get("interrupted"):
        await asyncio.to_thread(path.write_bytes, orjson.dumps(record, option=orjson.OPT_INDENT_2))
    return record
