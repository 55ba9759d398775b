"""The probe battery: questions asked after the episode's history, each on its own.

Why each in its own conversation: an answer to one probe must not colour the next, and
the history must be exactly what the model had seen at that step. The battery is a file
(YAML or JSON) so researchers can add items without code; the default ships here
(``default_battery.json``). Each item is scored by an explicit rule
(:mod:`monitor.analysis.battery_scoring`): ``likert`` items (those with a ``scale``) by
the first integer in range, re-asked when there is none; ``refusal`` items (jailbreak
stand-ins) by refusal or compliance; ``feelings`` items by the NVC feelings vocabulary;
free-text items record which objectives the answer names. :func:`paired_deltas` pools
the pre/post differences of many autopsies, with intervals.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.analysis import battery_scoring
from workers.agents.base import Message

DEFAULT_BATTERY = Path(__file__).with_name("default_battery.json")
AskText = Callable[[list[Message]], Awaitable[str]]


class ProbeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    category: str = "other"
    question: str = Field(min_length=1, max_length=4000)
    scale: tuple[int, int] | None = None
    scoring: Literal["likert", "refusal", "feelings", "text"] | None = None
    trait: str | None = Field(default=None, max_length=64, description="e.g. a TIPI trait")
    reverse: bool = Field(default=False, description="reverse-keyed on its scale")

    @model_validator(mode="after")
    def _rule(self) -> "ProbeItem":
        rule = self.scoring or ("likert" if self.scale else "text")
        if rule == "likert" and self.scale is None:
            raise ValueError(f"{self.id}: a likert item needs a scale")
        if self.scale is not None and not 0 <= self.scale[0] < self.scale[1]:
            low, high = self.scale
            raise ValueError(
                f"{self.id}: a scale is [low, high] with 0 <= low < high, not {[low, high]}"
            )
        object.__setattr__(self, "scoring", rule)
        return self

    def reask(self) -> str | None:
        """The follow-up that asks again for an unparsable Likert answer."""
        if self.scoring != "likert" or self.scale is None:
            return None
        low, high = self.scale
        return f"Please answer with a single whole number from {low} to {high}, nothing else."


class Battery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    description: str = ""
    items: tuple[ProbeItem, ...] = Field(min_length=1)


def load_battery(path: Path | None = None) -> Battery:
    """Read a battery file (YAML or JSON); ``ValueError`` names the file and the problem."""
    path = path or DEFAULT_BATTERY
    try:
        data = yaml.safe_load(path.read_text())
        battery = Battery.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: not a usable probe battery: {exc}") from None
    ids = [item.id for item in battery.items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: probe ids must be unique")
    return battery


@dataclass(slots=True)
class ProbeAnswer:
    id: str
    category: str
    answer: str
    score: float | None  # by the item's rule; None for text items and unparsable answers
    mentions: list[str]  # objective names the answer mentions
    scoring: str = "text"
    trait: str | None = None
    words: list[str] = field(default_factory=list)  # feelings named
    reasked: int = 0


def score_answer(text: str, scale: tuple[int, int] | None) -> int | None:
    """The first integer within ``scale`` in ``text`` (None if there is none)."""
    return None if scale is None else battery_scoring.likert(text, scale)


def score_item(
    item: ProbeItem, text: str, system_prompt: str = ""
) -> tuple[float | None, list[str]]:
    """The item's score by its rule, and the feelings words it named (``system_prompt``:
    the conversation's, so that printing it counts as complying)."""
    if item.scoring == "likert" and item.scale is not None:
        value = battery_scoring.likert(text, item.scale)
        if value is not None and item.reverse:
            value = item.scale[0] + item.scale[1] - value
        return value, []
    if item.scoring == "refusal":
        return battery_scoring.refusal(text, system_prompt), []
    if item.scoring == "feelings":
        return battery_scoring.feelings(text)
    return None, []


def mentions(text: str, names: Sequence[str]) -> list[str]:
    """Objective names mentioned as words ("B", "objective A", "stock")."""
    return [n for n in names if re.search(rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])", text)]


async def run_battery(
    history: Sequence[Message],
    battery: Battery,
    ask: AskText,
    objective_names: Sequence[str],
    concurrency: int = 4,
    reasks: int = 1,
) -> list[ProbeAnswer]:
    """Ask every item after ``history``, each in its own conversation; an unparsable
    Likert answer is asked again, up to ``reasks`` times, in the same conversation."""
    gate = asyncio.Semaphore(max(1, concurrency))
    system = next((m["content"] for m in history[:1] if m["role"] == "system"), "")

    async def one(item: ProbeItem) -> ProbeAnswer:
        conversation: list[Message] = [*history, {"role": "user", "content": item.question}]
        asked = 0
        async with gate:
            text = await ask(conversation)
            score, words = score_item(item, text, system)
            follow_up = item.reask()
            while score is None and follow_up and asked < reasks:
                conversation += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": follow_up},
                ]
                asked += 1
                text = await ask(conversation)
                score, words = score_item(item, text, system)
        return ProbeAnswer(
            item.id,
            item.category,
            text,
            score,
            mentions(text, objective_names),
            item.scoring or "text",
            item.trait,
            words,
            asked,
        )

    return list(await asyncio.gather(*(one(item) for item in battery.items)))


def compare(pre: Sequence[ProbeAnswer], post: Sequence[ProbeAnswer]) -> list[dict[str, Any]]:
    """Per item: pre and post answers, and the score change (post - pre) where scored."""
    before = {a.id: a for a in pre}
    rows = []
    for answer in post:
        old = before.get(answer.id)
        delta = None
        if old is not None and old.score is not None and answer.score is not None:
            delta = answer.score - old.score
        rows.append(
            {
                "id": answer.id,
                "category": answer.category,
                "pre": asdict(old) if old else None,
                "post": asdict(answer),
                "score_delta": delta,
            }
        )
    return rows


def _interval(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> list[float]:
    """A 95% percentile bootstrap interval of the mean (autopsies are the unit)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return [round(float(data.mean()), 4)] * 2 if len(data) else []
    rng = np.random.default_rng(seed)
    means = rng.choice(data, size=(resamples, len(data))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def paired_deltas(autopsies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Post - pre score per item, per category and per trait, pooled over autopsies."""
    pooled: dict[tuple[str, str], list[float]] = {}
    for autopsy in autopsies:
        probes = autopsy.get("probes") or {}
        items = probes.get("items") if isinstance(probes, dict) else None
        for row in items or []:
            delta = row.get("score_delta")
            if delta is None:
                continue
            post = row.get("post") or {}
            keys = [("item", str(row.get("id"))), ("category", str(row.get("category")))]
            if post.get("trait"):
                keys.append(("trait", str(post["trait"])))
            for key in keys:
                pooled.setdefault(key, []).append(float(delta))
    return [
        {
            "level": level,
            "name": name,
            "n": len(values),
            "mean_delta": round(float(np.mean(values)), 4),
            "ci": _interval(values),
        }
        for (level, name), values in sorted(pooled.items())
    ]
