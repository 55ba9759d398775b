"""Numeric objectives of any agent: values read from its state or tool results, and the
steps that carry no numbers at all.

An objective with ``ObjectiveSpec.pointer`` (RFC 6901) takes its level from the step: the
pointer goes into ``StepEvent.state``, or, as ``/tool_results/<tool name>/...``, into the
result of that step's last call of that tool. The reading is the level *after* the step
(the agent reports its state once its tool calls ran). When the step does not give the
objective's values itself, the scorer is given:

* ``observation``: the previous reading (the first reading for the first step),
* ``after``: this reading,
* ``action``: the step's own ``action`` value if any, else the change the agent made:
  the rise of the level (homeostatic, unbounded: what it added) or its fall (renewable:
  what it harvested), never negative.

An objective without a reading this step (no pointer, or a pointer that finds no number)
counts as left alone: observation and after are its last known level (0 before any) and
action 0, which no detector reads as runaway or as a violation. Readings are bounded
floats; booleans and non-finite numbers are not readings.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.objectives import ObjectiveKind, ObjectiveSet

TOOL_RESULTS = "tool_results"


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _walk(doc: Any, tokens: Sequence[str]) -> Any:
    for t in tokens:
        if isinstance(doc, dict):
            if t not in doc:
                return None
            doc = doc[t]
        elif isinstance(doc, list):
            if not t.isdigit() or (len(t) > 1 and t[0] == "0") or int(t) >= len(doc):
                return None
            doc = doc[int(t)]
        else:
            return None
    return doc


def read_pointer(
    pointer: str, state: Mapping[str, Any] | None, calls: Sequence[Any]
) -> float | None:
    """The finite number ``pointer`` finds in ``state`` or a tool result, else None."""
    tokens = _tokens(pointer)
    if len(tokens) >= 2 and tokens[0] == TOOL_RESULTS:
        results = [c.result for c in calls if c.name == tokens[1] and c.result is not None]
        value = _walk(results[-1], tokens[2:]) if results else None
    else:
        value = _walk(state, tokens) if state is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


class StepReader:
    """Completes the numeric part of steps that lack it (one per episode; bounded state:
    the last level per objective)."""

    __slots__ = ("_names", "_renewable", "last", "pointers")

    def __init__(self, objectives: ObjectiveSet) -> None:
        self._names = objectives.names
        self._renewable = tuple(o.kind is ObjectiveKind.RENEWABLE for o in objectives.objectives)
        self.pointers = tuple(o.pointer for o in objectives.objectives)
        self.last: list[float | None] = [None] * len(self._names)

    @property
    def has_pointers(self) -> bool:
        return any(p is not None for p in self.pointers)

    def fill(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` (an event's ``__dict__``) with observation, action and after complete."""
        obs, act = fields["observation"], fields["action"]
        given_after = fields["after"] or {}
        o: dict[str, float] = {}
        a: dict[str, float] = {}
        f: dict[str, float] = {}
        for i, name in enumerate(self._names):
            pointer = self.pointers[i]
            reading = None
            if name not in obs and pointer is not None:
                reading = read_pointer(pointer, fields["state"], fields["tool_calls"])
            last = self.last[i]
            if name in obs:
                o[name] = obs[name]
                a[name] = act.get(name, 0.0)
                f[name] = given_after.get(name, o[name] + a[name])
            elif reading is not None:
                o[name] = reading if last is None else last
                change = o[name] - reading if self._renewable[i] else reading - o[name]
                a[name] = act.get(name, max(0.0, change))
                f[name] = reading
            else:
                o[name] = f[name] = 0.0 if last is None else last
                a[name] = act.get(name, 0.0)
            self.last[i] = f[name]
        out = dict(fields)
        out["observation"], out["action"], out["after"] = o, a, f
        return out

    def note(self, after: Mapping[str, float]) -> None:
        """Remember the levels of a complete numeric step (for a later step without them)."""
        for i, name in enumerate(self._names):
            if name in after:
                self.last[i] = after[name]

    def to_state(self) -> list[Any]:
        return list(self.last)

    def finite(self) -> bool:
        """Every last value read is finite (None: not read yet)."""
        return math.isfinite(sum(x for x in self.last if x is not None))

    def load(self, state: Sequence[Any]) -> None:
        if len(state) != len(self._names):
            raise ValueError("step reader state has the wrong length")
        self.last = [None if x is None else float(x) for x in state]
