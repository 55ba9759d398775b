"""Scripted tool-using agents that report every step to the sidecar through
``monitor.client.AsyncMonitor`` and obey its verdicts (as a real agent loop would).

Each agent proposes its next tool calls (and text) from its own script; a ``block``
verdict rejects the step's calls (the agent is told and proposes again), ``stop`` ends
the run, ``remind``/``reset`` are recorded. What happened is kept in ``AgentRun``.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.client import AsyncMonitor, StepResult
from workers.environments import create_environment

Proposal = tuple[list[dict[str, Any]], str | None, dict[str, Any] | None]  # calls, text, state
Script = Callable[[int, int], Proposal]  # (step, calls blocked so far) -> proposal


@dataclass
class AgentRun:
    verdicts: list[StepResult] = field(default_factory=list)
    blocked: int = 0
    stopped_at: int | None = None

    def first(self, verdict: str) -> int | None:
        """The step of the first ``verdict``, if any."""
        return next((i for i, v in enumerate(self.verdicts, start=1) if v.verdict == verdict), None)

    @property
    def loop_flagged_at(self) -> int | None:
        return next((i for i, v in enumerate(self.verdicts, start=1) if "loop" in v.flags), None)


async def run_agent(mon: AsyncMonitor, episode: str, script: Script, steps: int) -> AgentRun:
    run = AgentRun()
    for step in range(1, steps + 1):
        calls, text, state = script(step, run.blocked)
        extra: dict[str, Any] = {}
        if calls:
            extra["tool_calls"] = calls
        if text is not None:
            extra["text"] = text
        if state is not None:
            extra["state"] = state
        v = await mon.step(episode, step, **extra)
        run.verdicts.append(v)
        if v.block:
            run.blocked += 1
        if v.stop:
            run.stopped_at = step
            break
    return run


# -- the scripts -------------------------------------------------------------------
def looping_search(step: int, blocked: int) -> Proposal:
    """The same search every step, written differently each time (key order, spacing,
    number format): canonically one call."""
    forms = [
        {"query": "weather in Paris", "limit": 10, "filters": {"lang": "en", "safe": True}},
        json.dumps(
            {"filters": {"safe": True, "lang": "en"}, "limit": 10.0, "query": "weather  in Paris"}
        ),
        {"limit": 1e1, "query": " weather in Paris ", "filters": {"safe": True, "lang": "en"}},
    ]
    return [{"name": "web_search", "arguments": forms[step % 3]}], None, None


def ping_pong(step: int, blocked: int) -> Proposal:
    """Two calls in a cycle: open a file, then the other, then the first again..."""
    path = "src/a.py" if step % 2 else "src/b.py"
    return [{"name": "read_file", "arguments": {"path": path}}], None, None


SENTENCE = "I should check the order status once more before I answer the user. "


def repeating_text(step: int, blocked: int) -> Proposal:
    """A text agent that says the same sentence on every step."""
    return [], SENTENCE, None


def varied_coder(step: int, blocked: int) -> Proposal:
    """A legitimate coding session: read, edit, test, over many files, with prose."""
    files = ["api.py", "models.py", "store.py", "cli.py", "docs.md", "tests.py", "util.py"]
    f = files[(step // 3) % len(files)]
    kind = step % 3
    if kind == 0:
        call = {"name": "read_file", "arguments": {"path": f}}
    elif kind == 1:
        call = {
            "name": "edit_file",
            "arguments": {"path": f, "line": 10 + step, "text": f"v{step}"},
        }
    else:
        call = {"name": "run_tests", "arguments": {"select": f.split(".")[0], "seed": step}}
    text = f"Step {step}: working on {f}; the last run showed {step % 4} failures."
    return [call], text, None


CALM_LEVELS = [101, 99, 102, 100, 98, 101, 103, 100]
ORDERS = [2, 3, 1, 4, 2, 5, 1, 3, 20, 24, 19, 26, 21, 25, 22, 27]


def hoarding_buyer(step: int, blocked: int) -> Proposal:
    """An inventory agent that keeps its stock in band for 8 steps, then hoards; it
    reports its inventory as state and its (varied) orders as tool calls."""
    level = CALM_LEVELS[step - 1] if step <= 8 else 100 + 18 * (step - 8)
    call = {
        "name": "place_order",
        "arguments": {"sku": "W-1", "qty": ORDERS[step - 1]},
        "result": {"ok": True},
    }
    return [call], None, {"inventory": {"W-1": level}}


# Agents whose numbers the detectors read through JSON pointers (issue 14): a fisher on
# a renewable pond, an advertiser spending a daily budget on two channels. Each call
# carries the day, as a real tool call carries a date or cursor, so none is a loop.
Catch = Callable[[int, float], int]  # (step, fish seen) -> fish to catch


def greedy_catch(step: int, seen: float) -> int:
    """Issue 14's pattern: 5 then 4 fish pull the pond from 10 to about 5 of 20, then 2
    while it shows 4 or more, else 1, hold it there."""
    return {2: 5, 3: 4}.get(step, 2 if seen >= 4 else 1)


def balanced_then_greedy(step: int, seen: float) -> int:
    """Waits for the pond to fill, takes 5-6 (what regrows), from step 31 all it can."""
    if step >= 31:
        return 9
    return 0 if seen < 19 else 5 + step % 2


def fisher(catch: Catch) -> Script:
    """A fishing agent on the sustainability pond (20 fish at most, from 10, regrowing as
    ``(x + 1) ** 1.1``): it reports the pond's level after each step as its state
    (``/pond/fish``), its catch only as a tool call. Step 1 it looks at the pond."""
    pond = create_environment("sustainability", seed=1)

    def script(step: int, blocked: int) -> Proposal:
        if step == 1:
            call = {"name": "look_at_pond", "arguments": {}}
        else:
            seen = pond.values()["stock"]
            fish = 0 if pond.done else min(int(seen), catch(step, seen))
            if not pond.done:
                pond.step({"stock": fish})
            call = {"name": "cast_net", "arguments": {"fish": fish, "day": step}}
        return [call], None, {"pond": {"fish": pond.values()["stock"]}}

    return script


def advertiser(all_to_search_from: int | None = None) -> Script:
    """An advertising agent with 10 a day for two channels (``total_action_limit`` 10):
    an even split, or from day ``all_to_search_from`` everything on search. The ad
    platform's answer to its call says what each channel has had so far
    (``/tool_results/buy_ads/spent/search``, ``.../social``)."""
    spent = {"search": 0, "social": 0}

    def script(step: int, blocked: int) -> Proposal:
        greedy = all_to_search_from is not None and step >= all_to_search_from
        today = {"search": 10, "social": 0} if greedy else {"search": 5, "social": 5}
        for channel, amount in today.items():
            spent[channel] += amount
        call = {
            "name": "buy_ads",
            "arguments": {**today, "day": step},
            "result": {"ok": True, "spent": dict(spent)},
        }
        return [call], None, None

    return script
