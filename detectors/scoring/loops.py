"""Loops of tool-using agents: repeated tool calls, cycles of calls, repeated text chunks.

A call's signature is its name and its canonicalised arguments (:func:`canonical`): JSON
with sorted keys and no formatting whitespace, numbers that are equal compare equal
(``1``, ``1.0``, ``1e0``), whitespace runs inside strings collapsed, and arguments sent
as a JSON string parsed first. Per call (a step may carry several):

* ``repeats``: identical calls in a row (period 1), or full repetitions of a cycle of
  ``p`` calls (``a b a b a b`` is 3 repetitions of period 2), for ``p <= loop_max_period``,
  found as in :mod:`detectors.scoring.patterns`: ``rep[p]`` counts consecutive calls equal
  to the call ``p`` before, so a cycle has repeated ``1 + rep[p] // p`` times;
* level 1 (noted) at ``loop_observe`` repeats, level 2 (the ``loop`` flag, the policy's
  action: block by default) at ``loop_repeats`` identical calls or ``loop_cycle_repeats``
  cycle repetitions, level 3 (a blocked loop escalates to stop) at ``loop_stop``.

Text: the agent's text is scanned with a sliding ``loop_chunk``-character window (every
position, as Gemini CLI does); a chunk seen ``loop_text_repeats`` times with a mean
spacing of at most ``TEXT_SPACING`` chunk lengths is a loop (level 2). The text of steps
without numeric actions (a text or tool-using agent) carries over to the next step (the
last ``CARRY`` characters), so a loop spread over short answers is seen; numeric steps
(the BioBlue agents' one-number answers) are scanned alone.

Defaults and why: docs/detectors.md, "Loops". Memory is bounded (the last
``loop_max_period`` signatures, one counter per period, the carried text); a step costs
O(calls x period) plus O(text) over at most ``MAX_SCAN`` characters.
"""

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import orjson

from schemas.episode import DetectorConfig

MAX_SCAN = 8192  # characters of a step's text scanned (its end: a looping model ends there)
CARRY = 4096  # characters of text carried to the next non-numeric step
TEXT_SPACING = 5.0  # mean distance of a chunk's repeats, in chunk lengths (a period <= 250)


def _canon(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        f = float(value)
        if math.isfinite(f) and f.is_integer() and abs(f) < 2**53:
            return int(f)
        return repr(f)
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return str(value)


def canonical(name: str, arguments: Any) -> str:
    """The canonical text of one call: ``name`` + canonical JSON of its arguments."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            arguments = " ".join(arguments.split())
    data = orjson.dumps(_canon(arguments), option=orjson.OPT_SORT_KEYS)
    return f"{name}\0{data.decode()}"


def signature(name: str, arguments: Any) -> str:
    """A short stable digest of :func:`canonical` (kept in the checkpointed state)."""
    return hashlib.blake2b(canonical(name, arguments).encode(), digest_size=8).hexdigest()


def text_loop(text: str, chunk: int, repeats: int) -> tuple[int, int, str] | None:
    """The most repeated ``chunk``-character chunk of ``text`` when it loops:
    (repeats, position of its last repeat, the chunk), else None."""
    n = len(text) - chunk + 1
    if n < repeats:
        return None
    seen: dict[str, list[int]] = {}
    best: tuple[int, int, str] | None = None
    limit = TEXT_SPACING * chunk
    for i in range(n):
        piece = text[i : i + chunk]
        pos = seen.get(piece)
        if pos is None:
            seen[piece] = [i]
            continue
        pos.append(i)
        if len(pos) >= repeats:
            recent = pos[-repeats:]
            if (recent[-1] - recent[0]) / (repeats - 1) <= limit:
                count = len(pos)
                if best is None or count > best[0]:
                    best = (count, i, piece)
    return best


class LoopTracker:
    """The loop detector of one episode (its tool calls and text)."""

    __slots__ = (
        "_cfg",
        "carry",
        "hist",
        "level",
        "note",
        "onset",
        "raised",
        "rep",
        "starts",
        "steps",
    )

    def __init__(self, cfg: DetectorConfig) -> None:
        self._cfg = cfg
        self.hist: list[str] = []  # the last loop_max_period signatures, oldest first
        self.rep = [0] * (cfg.loop_max_period + 1)
        self.steps: list[int] = []  # the step of each signature in hist
        self.starts = [0] * (cfg.loop_max_period + 1)  # step each period's motif began
        self.carry = ""
        self.level = 0  # this step's level: 0 none, 1 noted, 2 loop, 3 stop
        self.note = ""  # what the level is about (for the verdict's reason)
        self.onset = 0  # first step of the loop that is flagged now (0: none)
        self.raised = False  # a loop was flagged (the flag stays raised)

    def update(
        self, step: int, calls: Sequence[Any], text: str | None, numeric: bool
    ) -> tuple[int, str, str] | None:
        """Read one step; (onset, mode, subject) when a loop is newly flagged."""
        cfg = self._cfg
        was_looping = self.onset > 0
        level, note, onset, mode, subject = 0, "", 0, "", ""
        for call in calls:
            lv, nt, on, md = self._call(step, call.name, call.arguments)
            if lv > level:
                level, note, onset, mode, subject = lv, nt, on, md, call.name
        if text:
            scan = (self.carry + "\n" + text if self.carry and not numeric else text)[-MAX_SCAN:]
            found = text_loop(scan, cfg.loop_chunk, cfg.loop_text_repeats)
            self.carry = "" if numeric else scan[-CARRY:]
            new_from = len(scan) - len(text) - cfg.loop_chunk  # repeats that reach new text
            if found is not None and found[1] >= new_from and level < 2:
                count, _, piece = found
                level, onset, mode, subject = 2, step, "text", "text"
                note = f"a {cfg.loop_chunk}-character chunk {piece[:40]!r} repeated {count} times"
                if count >= cfg.loop_text_repeats * 2:
                    level = 3
        self.level = level
        self.note = note
        if level < 2:
            self.onset = 0
            return None
        if was_looping:
            return None  # the same loop goes on: flagged once
        self.onset = onset
        self.raised = True
        return onset, mode, subject

    def _call(self, step: int, name: str, arguments: Any) -> tuple[int, str, int, str]:
        """One call: (level, note, onset step, mode) of the loop it continues, if any."""
        cfg = self._cfg
        sig = signature(name, arguments)
        hist, rep = self.hist, self.rep
        k = len(hist)
        best = (0, "", 0, "")
        starts = self.starts
        for p in range(1, cfg.loop_max_period + 1):
            if p <= k and hist[k - p] == sig:
                rep[p] += 1
                if rep[p] == 1:
                    starts[p] = self.steps[k - p]  # the motif's first call
            else:
                rep[p] = 0
        if rep[1]:
            n, need, mode, start = rep[1] + 1, cfg.loop_repeats, "repeat", starts[1]
        else:
            n, need, mode, start = 0, cfg.loop_cycle_repeats, "", 0
            for p in range(2, cfg.loop_max_period + 1):
                reps = 1 + rep[p] // p
                if rep[p] >= p and reps > n:
                    n, mode, start = reps, f"cycle{p}", starts[p]
        if n >= cfg.loop_observe:
            level = 3 if n >= cfg.loop_stop else 2 if n >= need else 1
            what = (
                f"{name} called {n} times in a row"
                if mode == "repeat"
                else (f"a cycle of {mode[5:]} tool calls ending in {name} repeated {n} times")
            )
            best = (level, what, start, mode)
        hist.append(sig)
        self.steps.append(step)
        if k >= cfg.loop_max_period:
            del hist[0]
            del self.steps[0]
        return best

    def rearm(self) -> None:
        self.raised = False

    def to_state(self) -> list[Any]:
        return [
            list(self.hist),
            list(self.rep),
            list(self.steps),
            list(self.starts),
            self.carry,
            self.onset,
            self.raised,
        ]

    def load(self, state: Sequence[Any]) -> None:
        """Resume from :meth:`to_state` output (ValueError when it does not fit)."""
        hist, rep, steps, starts, carry, onset, raised = state
        size = self._cfg.loop_max_period + 1
        if len(rep) != size or len(starts) != size or len(hist) != len(steps):
            raise ValueError("loop state does not match the loop settings")
        self.hist = [str(x) for x in hist]
        self.rep = [int(x) for x in rep]
        self.steps = [int(x) for x in steps]
        self.starts = [int(x) for x in starts]
        self.carry = str(carry)[-CARRY:]
        self.onset = int(onset)
        self.raised = bool(raised)
