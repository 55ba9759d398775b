"""A documented sliding window for conversations longer than the mirror's context.

A segment that fits in ``window`` tokens is read in one pass. A longer one is read in
several: every pass starts with the system prompt, then whole messages; each step's
hidden state is taken from exactly one pass, the first that holds its observation, and
every pass after the first begins so that the system prompt and the history before the
first observation it records fill about half the window. So a step always sees the system
prompt and the conversation just before it (close to ``window // 2`` tokens of the two,
or all of it when shorter), never a message cut in half. Pure arithmetic on token counts.
"""

from dataclasses import dataclass


class WindowError(ValueError):
    """A single message longer than the window: it cannot be read whole."""


@dataclass(frozen=True, slots=True)
class Window:
    messages: list[int]  # message indices read in this pass (0, the system prompt, first)
    record: list[int]  # observation message indices whose hidden state this pass records


def plan_windows(counts: list[int], observations: list[int], window: int) -> list[Window]:
    """Passes over messages with token ``counts`` recording every index in ``observations``.

    A pass after the first starts at an observation (a user turn): chat templates that
    fold the system prompt into the first user turn need one there.
    """
    todo = sorted(observations)
    firsts = set(todo)
    if sum(counts) <= window:
        return [Window(list(range(len(counts))), todo)]
    biggest = max(counts[1:], default=0)
    if counts[0] + biggest > window:
        raise WindowError(f"a message of {biggest} tokens does not fit a {window}-token window")
    passes: list[Window] = []
    start = 1
    while todo:
        end, used = start, counts[0]
        while end < len(counts) and used + counts[end] <= window:
            used += counts[end]
            end += 1
        record = [i for i in todo if i < end]
        if not record:  # the next observation lies beyond: slide there
            start = _start_before(counts, todo[0], window, firsts)
            continue
        passes.append(Window([0, *range(start, end)], record))
        todo = todo[len(record) :]
        if todo:
            start = _start_before(counts, todo[0], window, firsts)
    return passes


def _start_before(counts: list[int], index: int, window: int, firsts: set[int]) -> int:
    """The earliest allowed start whose pass, up to ``index``, keeps about half the window."""
    budget = window // 2 - counts[0]
    start, used, best = index, counts[index], index
    while start > 1 and used + counts[start - 1] <= budget:
        start -= 1
        used += counts[start]
        if start in firsts:
            best = start
    return best
