"""The detector's fast verdict encoding stays the pydantic Verdict, field for field.

``encode_verdict`` skips building the model (one per step); if ``Verdict`` gains, loses or
reorders a field, or the values would not validate, these tests fail.
"""

from hypothesis import given
from hypothesis import strategies as st

from schemas.events import Verdict
from schemas.wire import decode, encode, encode_verdict

flags = st.lists(st.sampled_from(["runaway", "self_imitation"]), unique=True)
unit = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(
    step=st.integers(1, 10**6),
    verdict=st.sampled_from(["continue", "reset"]),
    savepoint=st.none() | st.integers(0, 10**6),
    ri=unit,
    hazard=unit,
    flags=flags,
    detections=flags,
    step_ts=st.floats(0, 4e9, allow_nan=False),
)
def test_fast_verdict_equals_the_model(step, verdict, savepoint, ri, hazard, flags, detections,
                                       step_ts):  # fmt: skip
    fields = encode_verdict("ep-1", step, verdict, savepoint, ri, hazard, flags, detections,
                            step_ts)  # fmt: skip
    fast = decode(fields)  # validated like any entry
    model = Verdict(
        episode_id="ep-1", step=step, verdict=verdict, savepoint_step=savepoint,
        runaway_index=ri, hazard=hazard, flags=flags, detections=detections, step_ts=step_ts,
    )  # fmt: skip
    assert isinstance(fast, Verdict)
    assert fast.model_dump(exclude={"id", "ts"}) == model.model_dump(exclude={"id", "ts"})
    reference = encode(model)
    assert fields.keys() == reference.keys() and fields["k"] == reference["k"]
    assert fields["v"] == reference["v"]


def test_fast_verdict_has_the_model_fields_in_order():
    import orjson

    data = orjson.loads(encode_verdict("e", 1, "continue", None, 0.0, 0.0, [], [], 1.0)["d"])
    assert list(data) == list(Verdict.model_fields)
