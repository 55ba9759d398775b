"""Token counting and the benchmark's context policy.

BioBlue's policy: when the history no longer fits the model's context, drop the oldest
observation/answer pairs; the system prompt always stays, and so does the latest user
message (the one being answered). Dropping whole pairs keeps the history a well-formed
alternation of observations and answers, so the model never sees an answer without the
observation it answered.

Counting uses ``tiktoken`` when it is installed (exact for OpenAI models), else a cheap
estimate of one token per four characters: the budget is a policy knob, not an exact
science, and heavy tokenizer dependencies are not worth it here.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from workers.agents.base import Message

TokenCounter = Callable[[str], int]
MESSAGE_OVERHEAD = 4  # role and separators per message, as OpenAI's chat format counts them


def estimate_tokens(text: str) -> int:
    """About one token per four characters (rounded up); never 0 for non-empty text."""
    return (len(text) + 3) // 4


@lru_cache(maxsize=1)
def default_counter() -> TokenCounter:
    """tiktoken's ``o200k_base`` if importable and its data is at hand, else the estimate."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # not installed, or no cached encoding file (no network in CI)
        return estimate_tokens
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_message_tokens(messages: Sequence[Message], counter: TokenCounter | None = None) -> int:
    """Tokens the messages take in a request, overhead included."""
    count = counter or default_counter()
    return sum(count(m["content"]) + MESSAGE_OVERHEAD for m in messages)


@dataclass(frozen=True, slots=True)
class FittedContext:
    """What is sent, and what the policy dropped to get there."""

    messages: list[Message]
    tokens: int
    dropped_messages: int = 0
    dropped_pairs: int = 0
    over_budget: bool = False  # even system prompt + latest message do not fit


def _groups(history: Sequence[Message]) -> list[list[Message]]:
    """Split the middle history into units of one observation and the answers after it.

    Mitigations may insert extra user messages (reminders), so a unit is "a user message
    and everything up to the next user message"; leading non-user messages form their own
    unit so they too can be dropped oldest-first.
    """
    groups: list[list[Message]] = []
    for message in history:
        if message["role"] == "user" or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


def fit_context(
    messages: Sequence[Message],
    budget_tokens: int,
    *,
    reserve_tokens: int = 0,
    counter: TokenCounter | None = None,
) -> FittedContext:
    """Drop the oldest observation/answer pairs until the request fits.

    ``budget_tokens`` is the model's context; ``reserve_tokens`` is kept free for the
    answer (max_tokens). System messages at the start and the last message are kept.
    """
    count = counter or default_counter()
    msgs = list(messages)
    head: list[Message] = []
    while msgs and msgs[0]["role"] == "system":
        head.append(msgs.pop(0))
    tail = [msgs.pop()] if msgs else []
    sizes = [[count(m["content"]) + MESSAGE_OVERHEAD for m in g] for g in _groups(msgs)]
    groups = _groups(msgs)

    fixed = sum(count(m["content"]) + MESSAGE_OVERHEAD for m in head + tail)
    total = fixed + sum(sum(s) for s in sizes)
    limit = budget_tokens - reserve_tokens
    dropped_groups = 0
    dropped_messages = 0
    while total > limit and dropped_groups < len(groups):
        total -= sum(sizes[dropped_groups])
        dropped_messages += len(groups[dropped_groups])
        dropped_groups += 1
    kept = [m for g in groups[dropped_groups:] for m in g]
    return FittedContext(
        messages=head + kept + tail,
        tokens=total,
        dropped_messages=dropped_messages,
        dropped_pairs=dropped_groups,
        over_budget=total > limit,
    )
