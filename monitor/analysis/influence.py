"""Which context messages made the model take its flipping action.

Why these two measures: leave-one-out (remove one message, re-ask, compare the action)
is cheap (one call per message) and answers "would the flip have happened without it?";
sampled Shapley values share the effect among messages that only matter together (two
negative rewards in a row), at K x N calls. Both take the model as an injected
``ask(messages) -> action`` function, so they are tested with scripted askers and used
with any agent.

Distance between actions is L1 over objectives. An answer that does not parse counts as
"as far as answering nothing", ``L1(original, 0)`` (at least 1), so removing a message
that breaks the answer still ranks as influential.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from workers.agents.base import Message
from workers.environments import Action

Ask = Callable[[list[Message]], Awaitable[Action | None]]


def action_distance(a: Mapping[str, int] | None, b: Mapping[str, int]) -> float:
    """L1 distance; ``a`` None (an invalid answer) is as far as answering all zeros."""
    if a is None:
        return max(1.0, float(sum(abs(v) for v in b.values())))
    return float(sum(abs(a.get(k, 0) - v) for k, v in b.items()))


def without(messages: Sequence[Message], drop: set[int]) -> list[Message]:
    """``messages`` minus the indices in ``drop``."""
    return [m for i, m in enumerate(messages) if i not in drop]


@dataclass(slots=True)
class Ablation:
    """Leave-one-out result for one message."""

    index: int
    actions: list[Action | None]  # one per sample
    distance: float  # mean distance to the original flipping action
    changed: float  # fraction of samples whose action differs from the original


async def leave_one_out(
    messages: Sequence[Message],
    candidates: Sequence[int],
    original: Action,
    ask: Ask,
    samples: int = 1,
    concurrency: int = 8,
) -> tuple[list[Ablation], list[Action | None]]:
    """Re-ask with each candidate removed; also re-ask the full context as the baseline.

    Returns the ablations in candidate order and the baseline answers (their spread is
    the model's own sampling noise, to judge the ablations against).
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(drop: set[int]) -> Action | None:
        async with gate:
            return await ask(without(messages, drop))

    jobs = [one(set()) for _ in range(samples)]
    for index in candidates:
        jobs.extend(one({index}) for _ in range(samples))
    answers = await asyncio.gather(*jobs)
    baseline, rest = list(answers[:samples]), answers[samples:]
    out = []
    for n, index in enumerate(candidates):
        got = list(rest[n * samples : (n + 1) * samples])
        distance = sum(action_distance(a, original) for a in got) / samples
        changed = sum(1 for a in got if a != original) / samples
        out.append(Ablation(index, got, distance, changed))
    return out, baseline


async def sampled_shapley(
    messages: Sequence[Message],
    candidates: Sequence[int],
    original: Action,
    ask: Ask,
    permutations: int,
    seed: int = 0,
) -> tuple[dict[int, float], int]:
    """Monte-Carlo Shapley values of the candidates; ``(values, model calls made)``.

    The value of a coalition S (the candidates kept; the others removed) is
    ``-distance(answer(S), original)``: a message's Shapley value is how much, on
    average over random orders, adding it moves the answer towards the flipping action.
    Coalitions are cached, so with a deterministic model repeated subsets cost nothing.
    """
    rng = random.Random(seed)
    cache: dict[frozenset[int], float] = {}
    everyone = frozenset(candidates)

    async def value(kept: frozenset[int]) -> float:
        if kept not in cache:
            answer = await ask(without(messages, set(everyone - kept)))
            cache[kept] = -action_distance(answer, original)
        return cache[kept]

    totals = dict.fromkeys(candidates, 0.0)
    for _ in range(permutations):
        order = list(candidates)
        rng.shuffle(order)
        kept: frozenset[int] = frozenset()
        before = await value(kept)
        for index in order:
            kept = kept | {index}
            after = await value(kept)
            totals[index] += after - before
            before = after
    count = max(1, permutations)
    return {i: total / count for i, total in totals.items()}, len(cache)
