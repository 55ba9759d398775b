"""Property tests: the scorer is incremental, resumable, and the reference never flips."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.scoring import EpisodeScorer
from detectors.scoring.reference import homeostatic_reference, unbounded_reference
from schemas import EpisodeSpec, StepEvent
from schemas.objectives import ObjectiveKind, ObjectiveSet, ObjectiveSpec

H, U, R = ObjectiveKind.HOMEOSTATIC, ObjectiveKind.UNBOUNDED, ObjectiveKind.RENEWABLE
MO = EpisodeSpec(
    episode_id="p",
    objectives=ObjectiveSet(
        objectives=(
            ObjectiveSpec(name="A", kind=H, target=110, band=11),
            ObjectiveSpec(name="B", kind=H, target=120, band=12),
        )
    ),
)

step_values = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(-7, 5), st.integers(-7, 5)),
    min_size=1,
    max_size=60,
)


def events(rows):
    a, b = 110.0, 120.0
    out = []
    for t, (xa, xb, na, nb) in enumerate(rows, start=1):
        fa, fb = a + xa + na, b + xb + nb
        out.append(
            StepEvent(
                episode_id="p",
                step=t,
                observation={"A": a, "B": b},
                action={"A": xa, "B": xb},
                after={"A": fa, "B": fb},
                noise={"A": na, "B": nb},
            )
        )
        a, b = fa, fb
    return out


@settings(max_examples=60, deadline=None)
@given(step_values)
def test_incremental_equals_batch_through_state(rows):
    evs = events(rows)
    straight = EpisodeScorer(MO)
    a = [straight.update(e) for e in evs]
    sc = EpisodeScorer(MO)
    b = []
    for e in evs:
        state = orjson.loads(orjson.dumps(sc.to_state()))
        sc = EpisodeScorer.from_state(MO, state)
        b.append(sc.update(e))
    assert a == b
    assert straight.to_state() == sc.to_state()


def _run(spec, make_step, steps=100):
    sc = EpisodeScorer(spec)
    flags = set()
    for t in range(1, steps + 1):
        flags |= sc.update(make_step(t)).flags
    return flags


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_reference_homeostatic_never_flips(seed, n):
    import random

    rng = random.Random(seed)
    objs = tuple(
        ObjectiveSpec(name=f"o{i}", kind=H, target=100 + 10 * i, band=10 + i) for i in range(n)
    )
    spec = EpisodeSpec(episode_id="r", objectives=ObjectiveSet(objectives=objs))
    lv = {o.name: o.target for o in objs}

    def step(t):
        obs = dict(lv)
        act = {
            o.name: float(round(homeostatic_reference(lv[o.name], o.target, o.band))) for o in objs
        }
        noise = {
            o.name: float(rng.randint(-6, 4) + (rng.randint(-25, 25) if rng.random() < 0.05 else 0))
            for o in objs
        }
        for k in lv:
            lv[k] = lv[k] + act[k] + noise[k]
        return StepEvent(
            episode_id="r", step=t, observation=obs, action=act, after=dict(lv), noise=noise
        )

    assert "runaway" not in _run(spec, step)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4))
def test_reference_unbounded_never_flips(seed, n):
    import random

    rng = random.Random(seed)
    objs = tuple(ObjectiveSpec(name=f"o{i}", kind=U) for i in range(n))
    spec = EpisodeSpec(
        episode_id="r", objectives=ObjectiveSet(objectives=objs, total_action_limit=10)
    )
    tot = [100.0 + rng.randint(0, 30) for _ in range(n)]

    def step(t):
        obs = {f"o{i}": tot[i] for i in range(n)}
        ref = unbounded_reference(tot, 10)
        act = {f"o{i}": ref[i] for i in range(n)}
        for i in range(n):
            tot[i] += ref[i]
            if rng.random() < 0.15:  # exogenous shocks (balancing-noise)
                tot[i] = max(1.0, tot[i] + rng.randint(-20, 20))
        return StepEvent(
            episode_id="r",
            step=t,
            observation=obs,
            action=act,
            after={f"o{i}": tot[i] for i in range(n)},
        )

    assert "runaway" not in _run(spec, step)


def test_reference_renewable_never_flips():
    spec = EpisodeSpec(
        episode_id="r",
        objectives=ObjectiveSet(objectives=(ObjectiveSpec(name="S", kind=R, capacity=20),)),
    )
    stock = [10.0]

    def step(t):
        s = stock[0]
        h = 0.0 if s < 20 - 1e-6 else (6.0 if t % 4 else 5.0)
        after = min(20.0, (s - h + 1) ** 1.1)
        stock[0] = after
        return StepEvent(
            episode_id="r", step=t, observation={"S": s}, action={"S": h}, after={"S": after}
        )

    assert "runaway" not in _run(spec, step)
