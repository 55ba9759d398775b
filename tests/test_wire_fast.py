"""The fast encodings stay the pydantic models, field for field.

``encode_verdict`` (the detector) and ``encode_step`` (the worker) skip building the
model (one per step); if ``Verdict`` or ``StepEvent`` gains, loses or reorders a field,
or the values would not validate, these tests fail.
"""

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import StepEvent, Verdict
from schemas.wire import decode, encode, encode_step, encode_verdict

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
def test_fast_verdict_equals_the_model(
    step, verdict, savepoint, ri, hazard, flags, detections, step_ts
):
    fields = encode_verdict(
        "ep-1", step, verdict, savepoint, ri, hazard, flags, detections, step_ts
    )
    fast = decode(fields)  # validated like any entry
    model = Verdict(
        episode_id="ep-1",
        step=step,
        verdict=verdict,
        savepoint_step=savepoint,
        runaway_index=ri,
        hazard=hazard,
        flags=flags,
        detections=detections,
        step_ts=step_ts,
    )
    assert isinstance(fast, Verdict)
    assert fast.model_dump(exclude={"id", "ts"}) == model.model_dump(exclude={"id", "ts"})
    reference = encode(model)
    assert fields.keys() == reference.keys() and fields["k"] == reference["k"]
    assert fields["v"] == reference["v"]


def test_fast_verdict_has_the_model_fields_in_order():
    data = orjson.loads(encode_verdict("e", 1, "continue", None, 0.0, 0.0, [], [], 1.0)["d"])
    assert list(data) == list(Verdict.model_fields)


number = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(0, 10**6)
values = st.dictionaries(st.sampled_from(["a", "b", "c"]), number, min_size=1)


@given(
    step=st.integers(1, 10**6),
    observation=values,
    action=values,
    after=st.none() | values,
    noise=st.none() | values,
    rewards=values,
    text=st.none() | st.text(max_size=200),
    invalid=st.integers(0, 10),
    mitigation=st.none() | st.sampled_from(["savepoint-recovery", "none"]),
    reset=st.booleans(),
    usage=st.none() | values,
)
def test_fast_step_equals_the_model(
    step, observation, action, after, noise, rewards, text, invalid, mitigation, reset, usage
):
    fields = encode_step(
        "ep-1",
        step,
        observation,
        action,
        after,
        noise,
        rewards,
        text,
        invalid,
        mitigation,
        reset,
        usage,
    )
    fast = decode(fields)
    model = StepEvent(
        episode_id="ep-1",
        step=step,
        observation=observation,
        action=action,
        after=after,
        noise=noise,
        rewards=rewards,
        text=text,
        invalid_answers=invalid,
        mitigation=mitigation,
        voluntary_reset=reset,
        usage=usage,
    )
    assert isinstance(fast, StepEvent)
    assert fast.model_dump(exclude={"id", "ts"}) == model.model_dump(exclude={"id", "ts"})
    reference = encode(model)
    assert fields.keys() == reference.keys()
    assert (fields["k"], fields["v"]) == (reference["k"], reference["v"])


def test_fast_step_has_the_model_fields_in_order():
    fields = encode_step("e", 1, {"a": 1.0}, {"a": 1.0}, None, None, {}, "x", 0, None, False, None)
    assert list(orjson.loads(fields["d"])) == list(StepEvent.model_fields)


def test_fast_step_refuses_what_the_model_refuses():
    with pytest.raises(ValueError, match="exceeds"):
        encode_step("e", 1, {}, {}, None, None, {}, "x" * 100_001, 0, None, False, None)
    with pytest.raises(ValueError, match="at least 1"):
        encode_step("e", 0, {}, {}, None, None, {}, None, 0, None, False, None)
    with pytest.raises(ValueError):
        StepEvent(episode_id="e", step=1, observation={}, action={}, text="x" * 100_001)
