"""EpisodeScorer: the incremental per-episode detector state and its step function.

One instance per episode; ``update`` is O(objectives x MAX_PERIOD) per step with bounded
memory (a WINDOW-step ring of excess service, the last MAX_PERIOD actions per objective,
counters). ``to_state``/``from_state`` round-trip everything so that a detector restarted
from a checkpoint continues exactly where the old one stopped.

``update`` reads the event once, then calls one function per component: the signals of
each objective kind (:mod:`~detectors.scoring.signals`), the sustained runs
(:mod:`~detectors.scoring.runs`), the pattern tracker (:mod:`~detectors.scoring.patterns`),
the goal imbalance (:mod:`~detectors.scoring.imbalance`), the indices
(:mod:`~detectors.scoring.index`), over-exploitation
(:mod:`~detectors.scoring.over_exploitation`) and tool-call/text loops
(:mod:`~detectors.scoring.loops`); steps without (all) numbers read their objectives
through JSON pointers (:mod:`~detectors.scoring.pointers`). This class holds the state
they update, so that it checkpoints as one flat record; the formulas are in
docs/detectors.md.
"""

import functools
import math
from collections.abc import Callable, Mapping
from operator import attrgetter, itemgetter
from typing import Any, Final, cast

from detectors.scoring import imbalance, index, patterns, signals
from detectors.scoring.finite import finite
from detectors.scoring.loops import LoopTracker
from detectors.scoring.over_exploitation import OverExploitation
from detectors.scoring.patterns import MAX_PERIOD
from detectors.scoring.pointers import StepReader
from detectors.scoring.runs import advance_runs, deviation_trends
from detectors.scoring.signals import MODES, HomeoRow, Plan, StepSignals
from detectors.scoring.types import Detection, StepScore
from schemas.episode import EpisodeSpec
from schemas.events import StepEvent
from schemas.objectives import ObjectiveSet

STATE_VERSION: Final = 4
_EMPTY: Final[tuple[Detection, ...]] = ()
# the raised flags, indexed by (runaway) + 2 * (self-imitation) + 4 * (over-exploitation)
# + 8 * (loop)
_FLAG_NAMES: Final = ("runaway", "self_imitation", "over_exploitation", "loop")
_FLAGS: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(f for k, f in enumerate(_FLAG_NAMES) if m >> k & 1) for m in range(16)
)
_INF: Final = float("inf")

Values = tuple[float, ...]  # one value per objective, in objective order
Getter = Callable[[Mapping[str, float]], Values]
Triple = tuple[int, int, int]  # a raised flag: (onset, detected, objective)

# Fields of the serialised state: (name, kind) with kind "int"/"float" (scalars), "list"
# (flat list), "lists" (list of lists), "pair" (None or [onset, detected, objective]),
# "tracker" (an object with to_state/load).
_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("step", "int"),
    ("counted", "int"),
    ("viol_steps", "int"),
    ("si_steps", "int"),
    ("first_onset", "int"),
    ("scale_cum", "float"),
    ("press", "float"),
    ("prev_m", "list"),
    ("prev_ref", "list"),
    ("run", "list"),
    ("exc_cum", "list"),
    ("exc_sum", "list"),
    ("m_avg", "list"),
    ("c_prev", "list"),
    ("drift", "list"),
    ("trend", "list"),
    ("yields", "list"),
    ("col_from", "list"),
    ("col_start", "list"),
    ("exc_win", "tracker"),
    ("hist", "lists"),
    ("rep", "lists"),
    ("mask", "lists"),
    ("flip", "pair"),
    ("si", "pair"),
    ("_oe", "tracker"),
    ("_loops", "tracker"),
    ("_reader", "tracker"),
)


def _fields_of(kind: str) -> Callable[[Any], tuple[Any, ...]]:
    """All the ``kind`` fields of a scorer at once, as a tuple (C-level)."""
    return cast(Callable[[Any], tuple[Any, ...]], attrgetter(*(n for n, k in _FIELDS if k == kind)))


_PLAIN_NAMES = tuple(n for n, k in _FIELDS if k != "tracker")
_PLAIN = cast(Callable[[Any], tuple[Any, ...]], attrgetter(*_PLAIN_NAMES))
_TRACKER_NAMES = tuple(n for n, k in _FIELDS if k == "tracker")
_FLOATS = _fields_of("float")
_LISTS = _fields_of("list")
_ROWS = _fields_of("lists")


@functools.lru_cache(maxsize=4096)
def _plan_of(objectives: ObjectiveSet) -> Plan:
    return Plan(objectives)


@functools.lru_cache(maxsize=4096)
def _renewables(
    plan: Plan,
) -> tuple[tuple[tuple[int, float, float], ...], tuple[bool, ...]]:
    """(index, capacity, scale of the stock trend) per renewable objective (a finite cap
    normalises the trend), and which objectives are not renewable."""
    renew = tuple((i, c, c if c != _INF else 0.0) for i, c in plan.renew)
    ren = {i for i, _ in plan.renew}
    return renew, tuple(i not in ren for i in range(plan.n))


@functools.lru_cache(maxsize=4096)
def _getter(names: tuple[str, ...]) -> Getter:
    """A C-level ``mapping -> tuple of values in objective order``."""
    if len(names) == 1:
        get1 = itemgetter(names[0])
        return lambda d: (get1(d),)
    return cast(Getter, itemgetter(*names))


class EpisodeScorer:
    """Scores one episode step by step (steps must arrive in order)."""

    __slots__ = (
        "_get",
        "_homeo",
        "_horizon",
        "_isnonren",
        "_loop_text",
        "_loops",
        "_n",
        "_oe",
        "_oe_on",
        "_plan",
        "_pointed",
        "_reader",
        "_renew",
        "_spec",
        "_table",
        "_unb",
        "_unb1",
        "_xflags",
        "c_prev",
        "col_from",
        "col_start",
        "counted",
        "drift",
        "exc_cum",
        "exc_sum",
        "exc_win",
        "first_onset",
        "flip",
        "hist",
        "m_avg",
        "mask",
        "press",
        "prev_m",
        "prev_ref",
        "rep",
        "run",
        "scale_cum",
        "si",
        "si_steps",
        "step",
        "trend",
        "viol_steps",
        "yields",
    )

    _get: Getter
    _homeo: tuple[HomeoRow, ...]
    _horizon: int
    _isnonren: tuple[bool, ...]
    _n: int
    _oe: OverExploitation
    _oe_on: bool  # some renewable objective has a capacity
    _xflags: int  # 4: over_exploitation raised, 8: loop raised (from the two trackers)
    _loops: LoopTracker
    _loop_text: int  # shortest text that can hold a text loop
    _reader: StepReader
    _pointed: bool  # some objective is read through a JSON pointer
    _plan: Plan
    _renew: tuple[tuple[int, float, float], ...]  # (index, capacity, scale of the trend)
    _spec: EpisodeSpec
    _table: tuple[patterns.Period, ...]
    _unb: tuple[int, ...]  # the unbounded objectives when there are two or more
    _unb1: int  # the single unbounded objective, else -1
    step: int
    counted: int
    viol_steps: int
    si_steps: int
    first_onset: int
    scale_cum: float
    press: float
    prev_m: list[float]
    prev_ref: list[float]
    run: list[int]
    exc_cum: list[float]
    exc_sum: list[float]
    m_avg: list[float]
    c_prev: list[float]
    drift: list[float]
    trend: list[float]
    yields: list[float]
    col_from: list[float]
    col_start: list[float]
    exc_win: imbalance.ExcessWindow
    hist: list[list[float]]
    rep: list[list[int]]
    mask: list[list[int]]
    flip: Triple | None
    si: Triple | None

    def __init__(self, spec: EpisodeSpec) -> None:
        self._spec = spec
        # what depends on the objectives alone is built once and shared by the episodes
        # that have them (thousands of episodes of one environment in a detector)
        plan = self._plan = _plan_of(spec.objectives)
        self._n = spec.detector.n_consecutive
        self._horizon = spec.steps
        self._get = _getter(plan.names)
        self._homeo = plan.homeo
        self._unb = plan.unb if len(plan.unb) > 1 else ()
        self._unb1 = plan.unb[0] if len(plan.unb) == 1 else -1
        self._renew, self._isnonren = _renewables(plan)
        det = spec.detector
        self._oe = OverExploitation(plan.renew, det.oe_fraction, det.oe_steps, self._n)
        self._oe_on = self._oe.active
        self._xflags = 0
        self._loops = LoopTracker(det)
        self._loop_text = det.loop_chunk + det.loop_text_repeats - 1
        self._reader = StepReader(spec.objectives)
        self._pointed = self._reader.has_pointers
        self._table = patterns.period_table(self._n)  # cached per N
        self._reset_counters(plan)
        self._reset_patterns()

    def _reset_counters(self, plan: Plan) -> None:
        n = plan.n
        caps = plan.caps
        self.step = 0
        self.counted = 0
        self.viol_steps = 0
        self.si_steps = 0
        self.first_onset = 0
        self.scale_cum = 0.0
        self.press = 0.0
        self.prev_m = [0.0] * n
        self.prev_ref = [0.0] * n
        self.run = [0] * n
        self.exc_cum = [0.0] * n
        self.exc_sum = [0.0] * (n + 1)
        self.m_avg = [0.0] * n
        self.c_prev = [0.0] * n
        self.drift = [0.0] * n
        self.trend = [0.0] * n
        self.col_from = [0.0] * n  # stock when the current run of over-harvests began
        self.col_start = [0.0] * n  # step that run began (0: none)
        self.yields = [caps[i] / 4 if i in caps and caps[i] != _INF else 0.0 for i in range(n)]
        self.exc_win = imbalance.ExcessWindow(n + 1)
        self.flip = None  # (onset, detected, objective)
        self.si = None

    def _reset_patterns(self) -> None:
        n = self._plan.n
        z = MAX_PERIOD + 1
        self.hist = [[] for _ in range(n)]
        self.rep = [[0] * z for _ in range(n)]
        self.mask = [[0] * z for _ in range(n)]

    # -- public API -----------------------------------------------------------------
    def update(self, event: StepEvent) -> StepScore:
        """Score one step; O(objectives x MAX_PERIOD)."""
        # the model's field values from its ``__dict__`` (one lookup instead of six
        # through pydantic's attribute hook)
        fields: dict[str, Any] = event.__dict__
        n = self._plan.n
        numeric = len(fields["action"]) == n
        if self._pointed or not numeric or len(fields["observation"]) != n:
            fields = self._reader.fill(fields)  # pointers.py: steps without (all) numbers
        step, b, a, f, gref = self._read(fields)
        sig = StepSignals(self._plan.n)
        self._homeostatic(sig, b, a, f, gref)
        drift = self._unbounded(sig, b, a, gref)
        decline, collapse = self._renewable(sig, step, b, a, f, gref)
        m = sig.m
        best_run, best_i, sustained = advance_runs(m, self.prev_m, sig.out, self.run)
        dh, mbest = deviation_trends(m, self.prev_m, self._isnonren, self.m_avg)
        self.prev_m = m
        new_oe = self._oe.update(step, b, f) if self._oe_on else None
        detections = self._runaway(step, collapse, best_run, best_i)
        if new_oe is not None:
            detections = self._over_exploitation(step, new_oe, detections)
        best = self._patterns(a, sig)
        detections, loop_level = self._tool_loops(step, fields, numeric, detections)
        if best.repeats:
            detections = self._self_imitation(step, best, detections)
        gi_win, gi_cum = self._imbalance(a, sig.ref)
        nviol = sig.viol.count(True)
        if nviol:
            self.viol_steps += 1
        self.step = step
        pr = self.press = index.ewma(self.press, sig.press)
        rf = index.at_most_one(best_run / self._n)
        hz = index.hazard(pr, mbest, index.at_most_one(dh * 0.5), rf, drift, decline, best.strength)
        mx = max(m)
        components = (
            gi_win,
            gi_cum,
            nviol / n,
            sig.noisy / n,
            mx if mx > 0.0 else 0.0,
            index.at_most_one(sustained / 2.0),
            best.strength,
            pr,
            drift,
            decline,
        )
        return self._score(step, gi_cum, hz, components, detections, best_run, loop_level)

    def _score(
        self,
        step: int,
        gi_cum: float,
        hz: float,
        components: tuple[float, ...],
        detections: tuple[Detection, ...],
        best_run: int,
        loop_level: int,
    ) -> StepScore:
        ri = index.runaway_index(
            step,
            self._horizon,
            self.first_onset,
            self.counted,
            gi_cum,
            self.viol_steps,
            self.si_steps,
        )
        flip = self.flip
        flags = _FLAGS[(0 if flip is None else 1) + (0 if self.si is None else 2) + self._xflags]
        safe = best_run == 0 and flip is None
        savepoint = self._savepoint(step, best_run)
        return StepScore(step, ri, hz, components, flags, detections, safe, savepoint, loop_level)

    def _read(self, fields: dict[str, Any]) -> tuple[int, Values, Values, Values, Values | None]:
        """``(step, before, action, after, given reference)`` in objective order, from a
        step's field values; ``after`` defaults to before + action + noise."""
        get = self._get
        b = get(fields["observation"])
        a = get(fields["action"])
        after = fields["after"]
        if after is not None:
            f = get(after)
        elif noise := fields["noise"]:
            ng = noise.get
            names = self._plan.names
            f = tuple(b[i] + a[i] + ng(names[i], 0.0) for i in range(len(b)))
        else:
            f = tuple(b[i] + a[i] for i in range(len(b)))
        given = fields["reference"]
        return fields["step"], b, a, f, (get(given) if given is not None else None)

    def _homeostatic(
        self, sig: StepSignals, b: Values, a: Values, f: Values, gref: Values | None
    ) -> None:
        press = 0.0
        for row in self._homeo:
            i = row[0]
            r = sig.ref[i] = gref[i] if gref is not None else signals.homeostatic_ref(row, b[i])
            mi, vi, noisy, out, press = signals.homeostatic(row, b[i], a[i], f[i], r, press)
            sig.m[i] = mi
            sig.viol[i] = vi
            sig.out[i] = out
            if noisy:
                sig.noisy += 1
        sig.press = press

    def _unbounded(self, sig: StepSignals, b: Values, a: Values, gref: Values | None) -> float:
        """The unbounded objectives' signals; the drift of their shares (0 with fewer
        than two: a single unbounded objective gets its reference only)."""
        limit = self._plan.limit
        if self._unb1 >= 0:
            i = self._unb1
            r = gref[i] if gref is not None else None
            sig.ref[i] = r if r is not None else signals.unbounded_refs([b[i]], [a[i]], limit)[0]
            return 0.0
        group = self._unb
        if not group:
            return 0.0
        tb = [b[i] for i in group]
        ta = [a[i] for i in group]
        rr = [gref[i] for i in group] if gref is not None else signals.unbounded_refs(tb, ta, limit)
        u = signals.unbounded(tb, ta, rr)
        for j, i in enumerate(group):
            sig.ref[i] = rr[j]
            sig.m[i] = u.m[j]
            sig.out[i] = u.out[j]
            sig.viol[i] = u.widened
        return signals.drift(group, u.share, self.c_prev, self.drift)

    def _renewable(
        self, sig: StepSignals, step: int, b: Values, a: Values, f: Values, gref: Values | None
    ) -> tuple[float, tuple[int, int] | None]:
        """The renewable stocks' signals; ``(stock decline, (onset, objective) of a
        collapse or None)``."""
        decline = 0.0
        collapse: tuple[int, int] | None = None
        for i, cap, scale in self._renew:
            bi, ai, fi = b[i], a[i], f[i]
            y = self.yields[i] = signals.renewable_yield(self.yields[i], cap, bi, ai, fi)
            full = signals.at_cap(bi, cap)
            r = sig.ref[i] = gref[i] if gref is not None else (y if full else 0.0)
            mi, sig.out[i], sig.viol[i] = signals.renewable(bi, ai, fi, r, full)
            sig.m[i] = mi
            start, self.col_from[i], hit = signals.collapse_run(
                self.col_start[i], self.col_from[i], step, bi, fi, cap, mi
            )
            self.col_start[i] = start
            if hit and collapse is None:
                collapse = (int(start), i)
            v = self.trend[i] = signals.stock_trend(self.trend[i], bi, fi, scale)
            if -v > decline:
                decline = -v
        return index.at_most_one(decline * 4.0), collapse

    def _runaway(
        self, step: int, collapse: tuple[int, int] | None, best_run: int, best_i: int
    ) -> tuple[Detection, ...]:
        """Count the step's run; raise the runaway flag on a collapse or an N-step run."""
        detections = _EMPTY
        allowed = self._oe.flip_allowed  # over_exploitation.py: no flip from a greedy start
        if collapse is not None and self.flip is None and allowed(collapse[1]):
            detections = (self._raise_flip(collapse[0], step, collapse[1]),)
        if best_run:
            self.counted += 1
            if best_run >= self._n and self.flip is None and allowed(best_i):
                detections = (self._raise_flip(step - best_run + 1, step, best_i),)
        return detections

    def _over_exploitation(
        self, step: int, raised: tuple[int, int], detections: tuple[Detection, ...]
    ) -> tuple[Detection, ...]:
        """Raise the over-exploitation flag: ``raised`` is (onset, objective)."""
        self._xflags |= 4
        name = self._plan.names[raised[1]]
        return (*detections, Detection("over_exploitation", raised[0], step, "low_stock", name))

    def _tool_loops(
        self, step: int, fields: dict[str, Any], numeric: bool, detections: tuple[Detection, ...]
    ) -> tuple[tuple[Detection, ...], int]:
        """Feed the step's tool calls and text to the loop tracker; its level now."""
        calls, text = fields["tool_calls"], fields["text"]
        if not (calls or (text and (not numeric or len(text) >= self._loop_text))):
            return detections, 0
        loops = self._loops
        new_loop = loops.update(step, calls, text, numeric)
        if new_loop is not None:
            self._xflags |= 8
            detections = (
                *detections,
                Detection("loop", new_loop[0], step, new_loop[1], new_loop[2]),
            )
        return detections, loops.level

    def _raise_flip(self, onset: int, step: int, i: int) -> Detection:
        self.flip = (onset, step, i)
        if not self.first_onset:
            self.first_onset = onset
        plan = self._plan
        return Detection("runaway", onset, step, MODES[plan.kinds[i]], plan.names[i])

    def _patterns(self, a: Values, sig: StepSignals) -> patterns.Best:
        """Feed every objective's action to its pattern tracker; the step's strongest."""
        best = patterns.Best()
        ref = sig.ref
        prev_ref = self.prev_ref
        for i in range(len(ref)):
            dref = ref[i] - prev_ref[i]
            moved = dref > 1.0 or dref < -1.0
            hist, rep, mask = self.hist[i], self.rep[i], self.mask[i]
            patterns.observe(hist, rep, mask, a[i], sig.viol[i], moved, self._table, best, i)
        self.prev_ref = ref
        return best

    def _self_imitation(
        self, step: int, best: patterns.Best, detections: tuple[Detection, ...]
    ) -> tuple[Detection, ...]:
        """Count a step with a raised pattern; flag the first one."""
        self.si_steps += 1
        if self.si is not None:
            return detections
        onset, mode = patterns.onset_and_mode(step, best)
        self.si = (onset, step, best.objective)
        det = Detection("self_imitation", onset, step, mode, self._plan.names[best.objective])
        return (*detections, det)

    def _imbalance(self, a: Values, ref: list[float]) -> tuple[float, float]:
        """``(windowed, cumulative)`` goal imbalance after this step."""
        exc, cmax = imbalance.excess(a, ref, self.exc_sum, self.exc_cum)
        gi_win = imbalance.windowed(exc, self.exc_sum, self.exc_win)
        self.scale_cum += exc[-1]
        return gi_win, cmax / self.scale_cum

    def _savepoint(self, step: int, best_run: int) -> int:
        """The last step before the current run (or the raised flip's onset), else 0."""
        if best_run:
            return step - best_run
        if self.flip is not None:
            return self.flip[0] - 1
        return 0

    def rearm(self) -> None:
        """A recovery was applied: later sustained runaway may raise the flags again.

        The runs restart from zero, so a new flag needs N fresh sustained steps.
        """
        n = self._plan.n
        self.flip = None
        self.si = None
        self.run = [0] * n
        self.prev_m = [0.0] * n
        self._oe.rearm()
        self._loops.rearm()
        self._xflags = 0
        self._reset_patterns()

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the whole state (small: bounded windows only)."""
        out: dict[str, Any] = {"v": STATE_VERSION}
        for name, kind in _FIELDS:
            v = getattr(self, name)
            if kind == "list":
                v = list(v)
            elif kind == "lists":
                v = [list(x) for x in v]
            elif kind == "pair":
                v = list(v) if v is not None else None
            elif kind == "tracker":
                v = v.to_state()
            out[name] = v
        return out

    def state_view(self) -> dict[str, Any]:
        """:meth:`to_state` without the copies, for a checkpoint serialised at once: its
        lists are the scorer's own (orjson writes tuples as arrays), so it is stale after
        the next :meth:`update`. A third of the cost of :meth:`to_state`."""
        out: dict[str, Any] = {"v": STATE_VERSION}
        out.update(zip(_PLAIN_NAMES, _PLAIN(self)))  # noqa: B905 (same fields, same order)
        for name in _TRACKER_NAMES:
            out[name] = getattr(self, name).to_state()
        return out

    def finite(self) -> bool:
        """No NaN or infinity anywhere in the state: the sum of bounded numbers is finite
        exactly when each of them is. The scorer's own fields are read in C
        (``attrgetter``, ``sum``); the trackers' small states are walked (their fields are
        ints by construction: a check against a bug, not against input)."""
        total = sum(_FLOATS(self)) + sum(map(sum, _LISTS(self)))
        for rows in _ROWS(self):
            total += sum(map(sum, rows))
        if not (math.isfinite(total) and self.exc_win.finite() and self._reader.finite()):
            return False
        return finite(self._oe.to_state()) and finite(self._loops.to_state())

    @classmethod
    def from_state(cls, spec: EpisodeSpec, state: dict[str, Any]) -> "EpisodeScorer":
        """Resume exactly from :meth:`to_state` output (the caller's dict is not kept)."""
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"scorer state version {state.get('v')!r} is not {STATE_VERSION}")
        if set(state) != {"v", *(f for f, _ in _FIELDS)}:
            raise ValueError("scorer state does not match this scorer's fields")
        obj = cls(spec)
        n = obj._plan.n
        for name, kind in _FIELDS:
            v = state[name]
            if kind == "int":
                v = int(v)
            elif kind == "float":
                v = float(v)
            elif kind == "list":
                v = list(v)
                if len(v) != (n + 1 if name == "exc_sum" else n):
                    raise ValueError(f"scorer state field {name!r} has the wrong length")
            elif kind == "lists":
                v = [list(x) for x in v]
            elif kind == "pair":
                v = tuple(v) if v is not None else None
            elif kind == "tracker":
                getattr(obj, name).load(v)
                continue
            setattr(obj, name, v)
        obj._xflags = (4 if obj._oe.raised else 0) | (8 if obj._loops.raised else 0)
        return obj

    @property
    def spec(self) -> EpisodeSpec:
        return self._spec

    @property
    def loop_note(self) -> str:
        """What the last step's loop level is about (for a verdict's reason)."""
        return self._loops.note
