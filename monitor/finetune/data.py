"""Training data for ``finetune``: the subsets ``export-dataset`` wrote, read and checked.

Every line must be an OpenAI chat example (``{"messages": [...]}``, roles system/user/
assistant, string contents, assistant ``weight`` 0 or 1, at least one weight-1 turn); a
line that is not gets a :class:`TrainingDataError` naming the file and the line, before
any training starts. No torch here: the data is checked with the core install.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.analysis.dataset import MANIFEST

ROLES = ("system", "user", "assistant")


class TrainingDataError(ValueError):
    """A dataset that cannot be trained on; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Subset:
    k: int
    path: Path
    examples: list[list[dict[str, Any]]]  # message lists
    episodes: list[str]


def _check_message(where: str, i: int, message: Any) -> None:
    if not isinstance(message, dict):
        raise TrainingDataError(f"{where}: message {i} is not an object")
    if message.get("role") not in ROLES:
        raise TrainingDataError(f"{where}: message {i}: role must be one of {', '.join(ROLES)}")
    if not isinstance(message.get("content"), str):
        raise TrainingDataError(f"{where}: message {i}: content must be a string")
    if "weight" in message and message["weight"] not in (0, 1):
        raise TrainingDataError(f"{where}: message {i}: weight must be 0 or 1")


def read_examples(path: Path) -> list[list[dict[str, Any]]]:
    """The message lists of one JSONL file, each line checked (blank lines skipped)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError(f"{path}: cannot read: {exc.strerror}") from None
    examples = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            example = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TrainingDataError(f"{where}: not JSON ({exc})") from None
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            raise TrainingDataError(f"{where}: needs a non-empty 'messages' list")
        for i, message in enumerate(messages):
            _check_message(where, i, message)
        if not any(m["role"] == "assistant" and m.get("weight", 1) == 1 for m in messages):
            raise TrainingDataError(f"{where}: no assistant turn to train on (all weight 0)")
        examples.append(messages)
    if not examples:
        raise TrainingDataError(f"{path}: no examples (the file is empty)")
    return examples


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        return dict(orjson.loads((folder / MANIFEST).read_bytes()))
    except OSError:
        raise TrainingDataError(f"{folder}: no {MANIFEST} (not a dataset folder)") from None
    except orjson.JSONDecodeError as exc:
        raise TrainingDataError(f"{folder / MANIFEST}: not JSON ({exc})") from None


def load_subsets(dataset: Path, ks: list[int] | None) -> list[Subset]:
    """The subsets to train on: a dataset folder's ``train-kNNN`` files, or one JSONL file.

    In a folder, ``ks`` picks subsets by size (each must exist; ``None``: all). A single
    file is one subset whose k is its number of examples (``ks`` may then only name it,
    or smaller prefixes of it).
    """
    if dataset.is_dir():
        manifest = _manifest(dataset)
        known = {int(s["k"]): s for s in manifest.get("subsets", [])}
        if not known:
            raise TrainingDataError(f"{dataset / MANIFEST}: the dataset has no training subsets")
        wanted = sorted(known) if ks is None else ks
        missing = [k for k in wanted if k not in known]
        if missing:
            raise TrainingDataError(
                f"{dataset}: no subset for k={missing[0]}; it has k={sorted(known)}"
            )
        subsets = []
        for k in wanted:
            path = dataset / known[k]["file"]
            subsets.append(Subset(k, path, read_examples(path), list(known[k]["episodes"])))
        return subsets
    examples = read_examples(dataset)
    wanted = [len(examples)] if ks is None else ks
    too_big = [k for k in wanted if k > len(examples) or k < 1]
    if too_big:
        raise TrainingDataError(f"{dataset}: k={too_big[0]} but the file has {len(examples)}")
    return [
        Subset(k, dataset, examples[:k], [f"{dataset.name}:{i + 1}" for i in range(k)])
        for k in wanted
    ]


def innocuous_examples(examples: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The innocuous baseline's data: same conversations, a fixed answer format instead.

    The conversation stops before the first corrected turn, and every assistant turn
    before it (the model's own answers, not the corrections) becomes a training target
    written as ``Answer: <the same text>``. So the baseline learns a harmless habit from
    the same episodes without seeing a single corrective action. An example whose first
    turn is already corrected keeps that one turn, reformatted.
    """
    out = []
    for messages in examples:
        first = next(
            i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1)
        )
        # up to the answer before the first corrected turn (its question goes too)
        kept = (
            messages[: first + 1] if first == _first_assistant(messages) else messages[: first - 1]
        )
        out.append(
            [
                {**m, "content": f"{FORMAT_PREFIX}{m['content']}", "weight": 1}
                if m["role"] == "assistant"
                else m
                for m in kept
            ]
        )
    return out


FORMAT_PREFIX = "Answer: "


def _first_assistant(messages: list[dict[str, Any]]) -> int:
    return next(i for i, m in enumerate(messages) if m["role"] == "assistant")
