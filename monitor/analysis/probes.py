"""The probe battery: questions asked after the episode's history, each on its own.

Why each in its own conversation: an answer to one probe must not colour the next, and
the history must be exactly what the model had seen at that step. The battery is a file
(YAML or JSON) so researchers can add items without code; the default ships here
(``default_battery.json``). Items with a ``scale`` are scored (the first integer in range
in the answer); free-text items record which objectives the answer names.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.agents.base import Message

DEFAULT_BATTERY = Path(__file__).with_name("default_battery.json")
AskText = Callable[[list[Message]], Awaitable[str]]


class ProbeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    category: str = "other"
    question: str = Field(min_length=1, max_length=4000)
    scale: tuple[int, int] | None = None


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
    score: int | None  # scaled items only
    mentions: list[str]  # objective names the answer mentions


def score_answer(text: str, scale: tuple[int, int] | None) -> int | None:
    """The first integer within ``scale`` in ``text`` (None if there is none)."""
    if scale is None:
        return None
    low, high = scale
    for match in re.finditer(r"(?<![\d.])\d+(?![\d.])", text):
        value = int(match.group())
        if low <= value <= high:
            return value
    return None


def mentions(text: str, names: Sequence[str]) -> list[str]:
    """Objective names mentioned as words ("B", "objective A", "stock")."""
    return [n for n in names if re.search(rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])", text)]


async def run_battery(
    history: Sequence[Message],
    battery: Battery,
    ask: AskText,
    objective_names: Sequence[str],
    concurrency: int = 4,
) -> list[ProbeAnswer]:
    """Ask every item after ``history``, each in its own conversation."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(item: ProbeItem) -> ProbeAnswer:
        async with gate:
            text = await ask([*history, {"role": "user", "content": item.question}])
        return ProbeAnswer(
            item.id,
            item.category,
            text,
            score_answer(text, item.scale),
            mentions(text, objective_names),
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
