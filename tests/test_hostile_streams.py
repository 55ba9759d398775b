"""Stream entries and checkpoints that must not slip through nor take the detector down
(issue 20, items 2, 10, 13), against a real Redis and the real detector service."""

import orjson
import pytest

from detectors.scoring import EpisodeScorer
from detectors.service import DetectorService
from schemas.episode import EpisodeSpec
from schemas.events import EpisodeStarted, StepEvent
from schemas.wire import decode, encode
from workers.environments.catalog import OBJECTIVES


def _spec(episode_id: str) -> EpisodeSpec:
    return EpisodeSpec(
        episode_id=episode_id,
        environment="multiobjective-homeostasis",
        objectives=OBJECTIVES["multiobjective-homeostasis"],
    )


def _step(episode_id: str, step: int, a: float = 110, da: float = 1) -> StepEvent:
    return StepEvent(
        episode_id=episode_id, step=step, observation={"A": a, "B": 120}, action={"A": da, "B": 1}
    )


async def _xadd(redis, settings, fields: dict, episode_id: str | None = None) -> None:
    episode_id = episode_id or orjson.loads(fields["d"])["episode_id"]
    await redis.xadd(settings.keys.steps(settings.keys.shard_of(episode_id)), fields)


async def _start(redis, settings, *episode_ids: str) -> None:
    for e in episode_ids:
        await _xadd(redis, settings, encode(EpisodeStarted(episode_id=e, spec=_spec(e))))


async def _score(redis, settings) -> DetectorService:
    service = DetectorService(redis, settings)
    await service.run_until_idle()
    return service


async def _verdicts(redis, settings, episode_id: str) -> list:
    entries = await redis.xrange(settings.keys.control(episode_id))
    return [v for v in (decode(f) for _, f in entries) if v.kind == "verdict"]


async def _dead(redis, settings) -> list[str]:
    reasons = []
    for shard in range(settings.shards):
        entries = await redis.xrange(settings.keys.deadletter(shard))
        reasons += [f[b"reason"].decode() for _, f in entries]
    return reasons


def _raw_step(episode_id: str, step: int, raw: bytes) -> dict:
    """A step entry whose observation of A is ``raw`` (NaN, 1e999, true: no model holds it)."""
    data = encode(_step(episode_id, step))["d"]
    data = data.replace(b'"observation":{"A":110.0', b'"observation":{"A":' + raw)
    assert raw in data
    return {"k": b"step", "v": b"1", "d": data}


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"1e308", b"true"])
async def test_non_finite_or_huge_numbers_in_entries_are_dead_lettered(redis, settings, raw):
    await _start(redis, settings, "e1")
    await _xadd(redis, settings, encode(_step("e1", 1)))
    await _xadd(redis, settings, _raw_step("e1", 2, raw), "e1")
    await _xadd(redis, settings, encode(_step("e1", 2)))
    await _score(redis, settings)
    verdicts = await _verdicts(redis, settings, "e1")
    assert [v.step for v in verdicts] == [1, 2]
    assert any("observation.A" in r for r in await _dead(redis, settings))
    state = await redis.hget(settings.keys.detector_state(settings.keys.shard_of("e1")), "e1")
    # a NaN would be written as null: only the fields a clean state leaves null may be
    clean = EpisodeScorer(_spec("e1"))
    clean.update(_step("e1", 1))
    allowed = {f"scorer.{path}" for path in _nulls(clean.to_state())} | {"scorer.flip", "scorer.si"}
    assert _nulls(orjson.loads(state)) <= allowed


def _nulls(value: object, path: str = "") -> set[str]:
    if value is None:
        return {path}
    if isinstance(value, dict):
        return set().union(*(_nulls(v, f"{path}.{k}".lstrip(".")) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_nulls(v, path) for v in value))
    return set()


async def test_a_gap_is_recorded_in_the_verdict_and_the_summary(redis, settings):
    await _start(redis, settings, "g1")
    for step in (1, 2, 8):
        await _xadd(redis, settings, encode(_step("g1", step)))
    await _score(redis, settings)
    verdicts = await _verdicts(redis, settings, "g1")
    assert [v.step for v in verdicts] == [1, 2, 8]
    assert verdicts[1].reason is None
    assert "steps 3-7 missing" in (verdicts[2].reason or "")
    summary = await redis.hgetall(settings.keys.episode("g1"))
    assert summary[b"missing_steps"] == b"5"


async def test_a_duplicate_that_differs_is_dead_lettered_as_a_conflict(redis, settings):
    await _start(redis, settings, "c1")
    for step in (1, 2, 3):
        await _xadd(redis, settings, encode(_step("c1", step)))
    await _xadd(redis, settings, encode(_step("c1", 2)))  # a true redelivery: dropped
    await _xadd(redis, settings, encode(_step("c1", 2, da=99)))  # another step 2: conflict
    wrong = StepEvent(episode_id="c1", step=3, observation={"X": 1}, action={"X": 1})
    await _xadd(redis, settings, encode(wrong))
    service = await _score(redis, settings)
    assert [v.step for v in await _verdicts(redis, settings, "c1")] == [1, 2, 3]
    reasons = await _dead(redis, settings)
    assert sum("conflict" in r for r in reasons) == 1
    assert sum("objectives do not match" in r for r in reasons) == 1
    assert service.metrics.duplicates._value.get() == 1


BAD_STATES = {
    "garbage": b"\x00not json",
    "not an object": b"[1, 2]",
    "no last_step": None,  # built below: a record without last_step
    "null sums": None,
    "unknown field": None,
}


def _broken(kind: str, good: bytes) -> bytes:
    state = orjson.loads(good)
    if kind == "no last_step":
        del state["last_step"]
    elif kind == "null sums":
        state["scorer"]["scale_cum"] = None
    elif kind == "unknown field":
        state["scorer"]["from_an_older_release"] = 1
    else:
        return BAD_STATES[kind]  # type: ignore[return-value]
    return orjson.dumps(state)


@pytest.mark.parametrize("kind", list(BAD_STATES))
async def test_an_unreadable_checkpoint_is_replaced_and_the_others_go_on(redis, settings, kind):
    await _start(redis, settings, "bad", "good")
    for e in ("bad", "good"):
        await _xadd(redis, settings, encode(_step(e, 1)))
    await _score(redis, settings)
    key = settings.keys.detector_state(settings.keys.shard_of("bad"))
    await redis.hset(key, "bad", _broken(kind, await redis.hget(key, "bad")))
    for e in ("bad", "good"):
        await _xadd(redis, settings, encode(_step(e, 2)))
    service = await _score(redis, settings)  # a fresh detector loads the checkpoints
    good = await _verdicts(redis, settings, "good")
    assert [v.step for v in good] == [1, 2]
    bad_verdicts = await _verdicts(redis, settings, "bad")
    assert [v.step for v in bad_verdicts] == [1, 2]
    assert "checkpoint" in (bad_verdicts[1].reason or "") and "restarted" in bad_verdicts[1].reason
    assert service.metrics.checkpoint_errors._value.get() == 1
    # the replaced checkpoint is readable again
    await _xadd(redis, settings, encode(_step("bad", 3)))
    await _score(redis, settings)
    assert [v.step for v in await _verdicts(redis, settings, "bad")] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["garbage", "unknown field", "missing field"])
async def test_a_spec_checkpoint_of_another_release(redis, settings, kind):
    await _start(redis, settings, "s1", "s2")
    for e in ("s1", "s2"):
        await _xadd(redis, settings, encode(_step(e, 1)))
    await _score(redis, settings)
    key = settings.keys.detector_state(settings.keys.shard_of("s1"))
    spec = orjson.loads(await redis.hget(key, "s1:spec"))
    if kind == "unknown field":
        spec["retired_option"] = True
    elif kind == "missing field":
        del spec["mitigation"]
    await redis.hset(key, "s1:spec", b"{{garbage" if kind == "garbage" else orjson.dumps(spec))
    for e in ("s1", "s2"):
        await _xadd(redis, settings, encode(_step(e, 2)))
    await _score(redis, settings)
    assert [v.step for v in await _verdicts(redis, settings, "s2")] == [1, 2]
    s1 = [v.step for v in await _verdicts(redis, settings, "s1")]
    if kind == "garbage":  # nothing to score it by: its steps are dead-lettered, with why
        assert s1 == [1]
        assert any("checkpoint" in r for r in await _dead(redis, settings))
    else:
        assert s1 == [1, 2]


async def test_a_poisoned_scorer_never_writes_a_non_finite_number(redis, settings):
    """The last guard: if the scorer's state ever held a NaN, the step is dead-lettered
    and nothing non-finite reaches a verdict, a summary or the checkpoint."""
    await _start(redis, settings, "p1")
    await _xadd(redis, settings, encode(_step("p1", 1)))
    service = DetectorService(redis, settings)
    await service.run_until_idle()
    key = settings.keys.detector_state(settings.keys.shard_of("p1"))
    before = await redis.hget(key, "p1")
    consumer = service._consumer(settings.keys.shard_of("p1"))
    await consumer._load_missing({"p1"})
    consumer.records["p1"].scorer.scale_cum = float("nan")
    entries = [(b"1-1", encode(_step("p1", 2, da=50)))]
    await consumer.handle(entries)
    assert [v.step for v in await _verdicts(redis, settings, "p1")] == [1]
    assert any("non-finite" in r for r in await _dead(redis, settings))
    assert await redis.hget(key, "p1") == before
