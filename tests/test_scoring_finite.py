"""The checkpoint guard: :func:`detectors.scoring.finite.finite` on JSON-shaped values and
:meth:`EpisodeScorer.finite` on a real scorer's fields, a NaN or an infinity planted in
each kind of field (float, list, list of lists, tracker)."""

import math

import pytest

from detectors.scoring import EpisodeScorer
from detectors.scoring.finite import finite
from schemas import EpisodeSpec, StepEvent
from schemas.objectives import ObjectiveKind, ObjectiveSet, ObjectiveSpec

NAN, INF = float("nan"), float("inf")
BAD = (NAN, INF, -INF)

# one objective of each kind, the renewable one capped so the over-exploitation tracker
# has state of its own
SPEC = EpisodeSpec(
    episode_id="f",
    objectives=ObjectiveSet(
        objectives=(
            ObjectiveSpec(name="A", kind=ObjectiveKind.HOMEOSTATIC, target=100, band=10),
            ObjectiveSpec(name="B", kind=ObjectiveKind.UNBOUNDED),
            ObjectiveSpec(name="S", kind=ObjectiveKind.RENEWABLE, capacity=20),
        )
    ),
)


def played(steps: int = 25) -> EpisodeScorer:
    """A scorer after ``steps`` varied steps (patterns, imbalance and loops all fed)."""
    scorer = EpisodeScorer(SPEC)
    level, stock = 100.0, 20.0
    for t in range(1, steps + 1):
        a, b, s = t % 3, 1 + (t % 4) * 2.5, 1 + t % 2
        after = {"A": level + a - 1, "B": b, "S": max(0.0, stock - s + 0.5)}
        scorer.update(
            StepEvent(
                episode_id="f",
                step=t,
                observation={"A": level, "B": 0, "S": stock},
                action={"A": a, "B": b, "S": s},
                after=after,
                text=f"step {t}: A {a}, B {b}, S {s}",
            )
        )
        level, stock = after["A"], after["S"]
    return scorer


def test_a_played_scorer_is_finite_both_ways():
    scorer = played()
    state = scorer.to_state()
    assert scorer.finite() and finite(state)
    # the fields the planting tests below rely on hold numbers after play
    assert scorer.exc_win.rows() and all(scorer.exc_win.rows()) and all(scorer.hist)
    assert scorer._oe.active and scorer._reader.to_state()
    assert EpisodeScorer.from_state(SPEC, state).finite()
    assert EpisodeScorer(SPEC).finite()  # a fresh one: empty window and histories


@pytest.mark.parametrize("bad", BAD, ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize("field", ["scale_cum", "press"])
def test_a_non_finite_float_field(field: str, bad: float):
    scorer = played()
    setattr(scorer, field, bad)
    assert not scorer.finite()
    assert not finite(scorer.to_state())


@pytest.mark.parametrize("bad", BAD, ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize("field", ["prev_m", "exc_cum", "exc_sum", "m_avg", "trend", "yields"])
def test_a_non_finite_number_in_a_list_field(field: str, bad: float):
    scorer = played()
    getattr(scorer, field)[-1] = bad
    assert not scorer.finite()
    assert not finite(scorer.to_state())


@pytest.mark.parametrize("bad", BAD, ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize("field", ["hist", "rep", "mask"])
def test_a_non_finite_number_in_a_list_of_lists_field(field: str, bad: float):
    scorer = played()
    rows = getattr(scorer, field)
    rows[-1][-1] = bad  # the last row: not the one finite() looks at first
    assert not scorer.finite()
    assert not finite(scorer.to_state())


@pytest.mark.parametrize("bad", BAD, ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize("slot", [0, -1])
def test_a_non_finite_number_in_the_excess_window(slot: int, bad: float):
    """The window is one flat ring of doubles (its first and its last value here)."""
    scorer = played()
    scorer.exc_win.values[slot] = bad
    assert not scorer.finite()
    assert not finite(scorer.to_state())


@pytest.mark.parametrize(
    ("tracker", "attr", "index", "bad"),
    [
        ("_reader", "last", 0, NAN),  # floats, None beside them until a level is read
        ("_reader", "last", -1, INF),
        ("_oe", "balanced", 0, INF),
        ("_oe", "raised", None, (1, 2, NAN)),
        ("_loops", "rep", 1, NAN),
        ("_loops", "starts", -1, -INF),
    ],
)
def test_a_non_finite_number_in_a_trackers_state(tracker: str, attr: str, index, bad):
    scorer = played()
    obj = getattr(scorer, tracker)
    if index is None:
        setattr(obj, attr, bad)
    else:
        getattr(obj, attr)[index] = bad
    assert not scorer.finite()
    assert not finite(scorer.to_state())


def test_a_tracker_with_none_beside_numbers_is_finite():
    scorer = played()
    scorer._reader.last[0] = None
    scorer._reader.last[-1] = 5.0
    assert scorer.finite() and finite(scorer.to_state())


def test_opposite_infinities_in_two_fields_do_not_cancel():
    scorer = played()
    scorer.scale_cum = INF
    scorer.m_avg[0] = -INF
    assert not scorer.finite()


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0,
        True,
        None,
        "nan",  # a string is not a number
        [1.0, 2, True],
        (1.0, 2.0),
        [1.0, None, 2.0],  # mixed: the sum fails, the items are walked
        [None, 1.0],
        [1.0, "x", None],
        [[1.0, 2.0], [3.0]],
        [[1.0, None], [2.0]],
        [[1.0], None, [2.0]],
        [[1.0], [2.0, [3.0, {"a": 4.0}]]],
        {"a": {"b": {"c": [1.0, {"d": 2.0}]}}, "e": [[0.5]]},
        [],
        {},
        [[]],
        [[], []],
        [[], [1.0]],
        {"a": [], "b": [[]], "c": {}},
    ],
    ids=repr,
)
def test_finite_values(value):
    assert finite(value)


@pytest.mark.parametrize("bad", BAD, ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize(
    "build",
    [
        lambda x: x,
        lambda x: [x],
        lambda x: (1.0, x),
        lambda x: [1.0, 2, x],
        lambda x: [1.0, None, x],  # mixed list
        lambda x: [None, x],  # first item not a number
        lambda x: ["x", 1.0, x],
        lambda x: [[1.0], [2.0, x]],  # list of lists, not in the first row
        lambda x: [[x], [1.0]],
        lambda x: [[], [x]],  # first row empty
        lambda x: [[1.0], None, [x]],  # a list of lists with a None row
        lambda x: [[1.0, None], [x]],  # a mixed row
        lambda x: [[[x]]],
        lambda x: [[1.0], [2.0, [3.0, x]]],
        lambda x: {"a": x},
        lambda x: {"a": {"b": {"c": [1.0, {"d": x}]}}},
        lambda x: [1.0, {"d": x}],
        lambda x: {"a": [], "b": [[]], "c": [[1.0], [x]]},
    ],
)
def test_non_finite_values(build, bad: float):
    value = build(bad)
    assert not finite(value), value


def test_finite_agrees_with_a_plain_recursive_walk_on_the_played_state():
    def walk(v) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list | tuple):
            return all(walk(x) for x in v)
        if isinstance(v, dict):
            return all(walk(x) for x in v.values())
        return True

    state = played().to_state()
    assert finite(state) == walk(state) is True
    state["hist"][0].append(NAN)
    assert finite(state) == walk(state) is False
