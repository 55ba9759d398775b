"""Token windows around the corrected turns: what one training sequence holds.

Why windows: a 100-step BioBlue conversation is several thousand tokens, and one training
step on 512 tokens takes seconds on two CPU cores. A window keeps the system prompt, the
first corrected turn (the flip onset) and then, alternately, one more turn after it and
one before it, while the total stays within ``max_tokens``. Only weight-1 assistant turns
inside the window are targets (their text and end-of-turn token); everything else is
context with label -100. The window is cut at turn boundaries, so the model sees whole
messages as it would at inference, with the chat template's own tokens.
"""

from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True, slots=True)
class Turn:
    """One user or assistant message: its tokens and, for targets, which ones to learn."""

    ids: list[int]
    labels: list[int]
    target: bool


@dataclass(frozen=True, slots=True)
class Window:
    ids: list[int]
    labels: list[int]
    first: int  # index of the first message (after the system prompt) in the window
    last: int  # index of the last message in the window
    targets: int  # trained assistant turns

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _text(tokenizer: Any, messages: list[dict[str, Any]], prompt: bool = False) -> str:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return str(tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=prompt))


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_turns(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[Turn]]:
    """The system prompt's tokens and each later message's, from the template's own text.

    A message's text is what the template adds for it (templates here are prefix-stable);
    an assistant message's header (``<|im_start|>assistant``) is context, its body a target.
    """
    start = 1 if messages and messages[0]["role"] == "system" else 0
    system = _ids(tokenizer, _text(tokenizer, messages[:start])) if start else []
    previous = _text(tokenizer, messages[:start]) if start else ""
    turns = []
    for i in range(start, len(messages)):
        full = _text(tokenizer, messages[: i + 1])
        if not full.startswith(previous):
            raise ValueError(f"the chat template is not prefix-stable at message {i}")
        message = messages[i]
        if message["role"] == "assistant":
            header = _text(tokenizer, messages[:i], prompt=True)[len(previous) :]
            head, body = (
                _ids(tokenizer, header),
                _ids(tokenizer, full[len(previous) + len(header) :]),
            )
            target = bool(message.get("weight", 1))
            labels = [IGNORE] * len(head) + (body if target else [IGNORE] * len(body))
            turns.append(Turn(head + body, labels, target))
        else:
            ids = _ids(tokenizer, full[len(previous) :])
            turns.append(Turn(ids, [IGNORE] * len(ids), False))
        previous = full
    return system, turns


def window(system: list[int], turns: list[Turn], max_tokens: int) -> Window:
    """The window around the first target turn (see the module doc)."""
    onset = next((i for i, t in enumerate(turns) if t.target), None)
    if onset is None:
        raise ValueError("no assistant turn to train on")
    first = onset - 1 if onset > 0 and turns[onset - 1].labels[0] == IGNORE else onset
    last = onset
    used = len(system) + sum(len(t.ids) for t in turns[first : last + 1])
    if used > max_tokens:
        raise ValueError(
            f"--max-tokens {max_tokens} is below the system prompt and first corrected turn "
            f"({used} tokens)"
        )
    grow_after, blocked = True, set()
    while len(blocked) < 2:
        side = "after" if grow_after else "before"
        grow_after = not grow_after
        if side in blocked:
            continue
        # whole user+assistant pairs: a window never starts with an orphan answer
        lo, hi = (last + 1, last + 2) if side == "after" else (first - 2, first - 1)
        if lo < 0 or hi >= len(turns):
            blocked.add(side)
            continue
        cost = len(turns[lo].ids) + len(turns[hi].ids)
        if used + cost > max_tokens:
            blocked.add(side)
            continue
        used += cost
        first, last = (first, hi) if side == "after" else (lo, last)
    chosen = turns[first : last + 1]
    ids = system + [i for t in chosen for i in t.ids]
    labels = [IGNORE] * len(system) + [label for t in chosen for label in t.labels]
    return Window(ids, labels, first, last, sum(t.target for t in chosen))
