"""The one-call batch of stream and hash writes, against a real Redis."""

import pytest
from redis.exceptions import ResponseError

from schemas.batch_writes import MAX_VALUES_PER_OP, BatchWriter, WriteBatch


async def test_every_operation_lands_in_order(redis, settings):
    p = f"{settings.key_prefix}:{{s0}}"
    await redis.xgroup_create(f"{p}:in", "g", id="0", mkstream=True)
    ids = [await redis.xadd(f"{p}:in", {"n": str(i)}) for i in range(3)]
    await redis.xreadgroup("g", "c", {f"{p}:in": ">"})
    await redis.hset(f"{p}:h", mapping={"gone": "1", "kept": "1"})

    batch = WriteBatch()
    batch.xadd(f"{p}:out", {"k": b"verdict", "d": b'{"x": 1}'}, 1000)
    batch.xadd(f"{p}:out", {"k": "second"}, 1000)
    batch.hset(f"{p}:h", {"a": 1, "b": b"two"})
    batch.hdel(f"{p}:h", ["gone"])
    batch.expire(f"{p}:h", 100)
    batch.xack(f"{p}:in", "g", ids[:2])
    await BatchWriter(redis).send(batch)

    out = await redis.xrange(f"{p}:out")
    assert [f for _, f in out] == [{b"k": b"verdict", b"d": b'{"x": 1}'}, {b"k": b"second"}]
    assert await redis.hgetall(f"{p}:h") == {b"kept": b"1", b"a": b"1", b"b": b"two"}
    assert 0 < await redis.ttl(f"{p}:h") <= 100
    assert (await redis.xpending(f"{p}:in", "g"))["pending"] == 1


async def test_values_land_as_redis_py_would_write_them(redis, settings):
    """The batch travels as msgpack and Lua numbers are doubles: floats, integers past
    2**53 and binary bytes must still arrive exactly as redis-py would send them."""
    p = f"{settings.key_prefix}:{{s0}}"
    values = {
        "f": 0.1234567890123,
        "tiny": 1e-300,
        "big": 2**63 - 1,
        "neg": -(2**53) - 1,
        "int": 42,
        "bin": b"\x00\xff\xfe not utf-8",
        "text": "caf\u00e9",
        "empty": "",
    }
    batch = WriteBatch()
    batch.hset(f"{p}:h", values)
    batch.xadd(f"{p}:s", {"ri": 0.5, "raw": b"\x00\x01"}, 1000)
    await BatchWriter(redis).send(batch)
    await redis.hset(f"{p}:ref", mapping=values)  # what redis-py itself writes
    assert await redis.hgetall(f"{p}:h") == await redis.hgetall(f"{p}:ref")
    assert (await redis.hget(f"{p}:h", "f")) == b"0.1234567890123"
    ((_, fields),) = await redis.xrange(f"{p}:s")
    assert fields == {b"ri": b"0.5", b"raw": b"\x00\x01"}
    for bad in (True, None):
        with pytest.raises(TypeError, match="cannot be"):
            WriteBatch().hset(f"{p}:h", {"x": bad})


async def test_long_operations_are_split_below_luas_unpack_limit(redis, settings):
    key = f"{settings.key_prefix}:{{s0}}:big"
    n = MAX_VALUES_PER_OP * 2 + 7  # would overflow unpack() as one HSET
    batch = WriteBatch()
    batch.hset(key, {f"f{i}": i for i in range(n)})
    await BatchWriter(redis).send(batch)
    assert await redis.hlen(key) == n
    batch = WriteBatch()
    batch.hdel(key, [f"f{i}" for i in range(n - 1)])
    await BatchWriter(redis).send(batch)
    assert await redis.hkeys(key) == [f"f{n - 1}".encode()]


async def test_an_empty_batch_sends_nothing_and_a_bad_one_fails_loudly(redis, settings):
    await BatchWriter(redis).send(WriteBatch())  # no call, no error
    batch = WriteBatch()
    batch.args += ("Z", 1)
    batch.keys.append(f"{settings.key_prefix}:{{s0}}:x")
    with pytest.raises(ResponseError, match="unknown op"):
        await BatchWriter(redis).send(batch)


async def test_command_batcher_sends_concurrent_submits_together(redis, settings):
    import asyncio

    from schemas.batch_writes import CommandBatcher

    batcher = CommandBatcher(redis)
    key = f"{settings.key_prefix}:counted"
    sent: list[int] = []
    real_pipeline = redis.pipeline

    def counting_pipeline(*args, **kwargs):
        sent.append(1)
        return real_pipeline(*args, **kwargs)

    redis.pipeline = counting_pipeline
    try:
        await asyncio.gather(*(batcher.submit(lambda p: p.incr(key)) for _ in range(200)))
    finally:
        del redis.pipeline
    assert int(await redis.get(key)) == 200
    assert len(sent) <= 2  # the first submit's pipeline, then everything queued behind it

    # a failing pipeline fails each of its submitters; the batcher carries on
    await redis.set(f"{settings.key_prefix}:text", "x")
    bad = batcher.submit(lambda p: p.incr(f"{settings.key_prefix}:text"))
    with pytest.raises(ResponseError):
        await bad
    await batcher.submit(lambda p: p.incr(key))
    assert int(await redis.get(key)) == 201
    await batcher.aclose()
