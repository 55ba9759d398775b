"""The stream decoder and the detector fuzzed with hostile entries (issue 20, also
check): whatever bytes a steps stream holds, decoding either gives an event whose
numbers are finite and bounded or raises BadEntry with a reason, and a detector fed a
mix of hostile and good entries stays up, dead-letters the bad ones and scores every
good step."""

import math

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from detectors.service import DetectorService
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeStarted, StepEvent
from schemas.numbers import MAX_MAGNITUDE
from schemas.wire import BadEntry, decode, encode
from workers.environments.catalog import OBJECTIVES

RAW_NUMBERS = st.sampled_from(
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e999",
        b"1e308",
        b"-1e13",
        b"true",
        b"null",
        b'"1"',
        b"[]",
        b"{}",
        b"1",
        b"-0.0",
        b"5e-324",
        b"99999999999999999999",
    ]
)


def _step_entry(episode_id: str, step: int, raw_a: bytes, raw_b: bytes) -> dict:
    good = encode(
        StepEvent(
            episode_id=episode_id, step=step, observation={"A": 1, "B": 2}, action={"A": 3, "B": 4}
        )
    )
    data = good["d"].replace(b'"observation":{"A":1.0', b'"observation":{"A":' + raw_a)
    data = data.replace(b'"action":{"A":3.0,"B":4.0}', b'"action":{"A":3.0,"B":' + raw_b + b"}")
    return {**good, "d": data}


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _numbers(v)]
    return []


def _bounded(event: object) -> bool:
    values = [event.observation, event.action, event.rewards]  # type: ignore[attr-defined]
    return all(math.isfinite(x) and abs(x) <= MAX_MAGNITUDE for x in _numbers(values))


@hsettings(max_examples=300, deadline=None, database=None)
@given(raw_a=RAW_NUMBERS, raw_b=RAW_NUMBERS, depth=st.integers(0, 300), junk=st.binary(max_size=64))
def test_decode_gives_a_bounded_event_or_bad_entry(raw_a, raw_b, depth, junk):
    for fields in (
        _step_entry("e", 1, raw_a, raw_b),
        {"k": b"step", "v": b"1", "d": junk},
        {
            "k": b"episode_started",
            "v": b"1",
            "d": b'{"kind":"episode_started","episode_id":"e","spec":{"episode_id":"e",'
            b'"objectives":{"objectives":[{"name":"A","kind":"unbounded"}]},"env_options":'
            + b'{"k":' * depth
            + b"1"
            + b"}" * depth
            + b"}}",
        },
    ):
        try:
            event = decode(fields)
        except BadEntry as exc:
            assert str(exc)
            continue
        if event.kind == "step":
            assert _bounded(event)


async def test_a_detector_fed_hostile_entries_stays_up_and_scores_the_good(redis, settings):
    spec = EpisodeSpec(
        episode_id="f1",
        environment="multiobjective-homeostasis",
        objectives=OBJECTIVES["multiobjective-homeostasis"],
    )
    stream = settings.keys.steps(settings.keys.shard_of("f1"))
    await redis.xadd(stream, encode(EpisodeStarted(episode_id="f1", spec=spec)))
    entries: list[dict] = []

    @hsettings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(raw_a=RAW_NUMBERS, raw_b=RAW_NUMBERS)
    def collect(raw_a, raw_b):
        n = len(entries) // 2 + 1  # a hostile entry, then the good one of the same step
        entries.append(_step_entry("f1", n, raw_a, raw_b))
        entries.append(
            encode(
                StepEvent(
                    episode_id="f1",
                    step=n,
                    observation={"A": 110, "B": 120},
                    action={"A": 1, "B": 1},
                )
            )
        )

    collect()
    for fields in entries:
        await redis.xadd(stream, fields)
    service = DetectorService(redis, settings)
    await service.run_until_idle()
    verdicts = [decode(f) for _, f in await redis.xrange(settings.keys.control("f1"))]
    steps = [v.step for v in verdicts if v.kind == "verdict"]
    assert steps == list(range(1, len(entries) // 2 + 1))  # one verdict per step, in order
    assert all(math.isfinite(v.runaway_index) for v in verdicts if v.kind == "verdict")
    state = orjson.loads(
        await redis.hget(settings.keys.detector_state(settings.keys.shard_of("f1")), "f1")
    )
    assert state["last_step"] == steps[-1]
