"""A detector's batch is written before its entries are acked, and re-scored when the
write fails."""

import pytest

from detectors.consumer import ShardConsumer
from schemas.keys import DETECTOR_GROUP
from schemas.metrics import DetectorMetrics
from schemas.redis_io import dedicated, stream_entries
from tests.conftest import RECORDINGS
from tests.detector_helpers import control_events, publish_recordings


async def _consumer(redis, client, settings, episode_id: str) -> ShardConsumer:
    shard = settings.keys.shard_of(episode_id)
    await redis.xgroup_create(settings.keys.steps(shard), DETECTOR_GROUP, id="0", mkstream=True)
    consumer = ShardConsumer(client, settings, shard, "c1", DetectorMetrics())
    await consumer.take_over()
    assert await consumer.poll() == 0  # none of our own pending: from here on, new entries
    return consumer


async def _drain(consumer: ShardConsumer) -> None:
    """Poll until idle (a first empty read may only be the end of our own pending)."""
    idle = 0
    while idle < 2:
        idle = idle + 1 if await consumer.poll(block_ms=1) == 0 else 0


async def _verdicts(redis, settings, episode_id: str) -> list[int]:
    events = await control_events(redis, settings, episode_id)
    return [e.step for e in events if e.kind == "verdict"]


async def _one_recording(redis, settings) -> tuple[str, list]:
    (episode,) = (await publish_recordings(redis, settings, RECORDINGS[:1])).items()
    episode_id, (_, events) = episode
    return episode_id, events


@pytest.mark.parametrize("flush_scripts", [False, True])
async def test_a_batch_is_written_before_its_entries_are_acked(redis, settings, flush_scripts):
    settings = settings.model_copy(update={"batch_size": 5, "control_maxlen": 1000})
    episode_id, events = await _one_recording(redis, settings)
    stream = settings.keys.steps(settings.keys.shard_of(episode_id))
    async with dedicated(redis) as client:
        consumer = await _consumer(redis, client, settings, episode_id)
        if flush_scripts:  # as after a Redis restart: the batch script must be loaded again
            await redis.script_flush()
        assert await consumer.poll() == 5  # the start and steps 1-4
        assert await _verdicts(redis, settings, episode_id) == [1, 2, 3, 4]
        assert (await redis.xpending(stream, DETECTOR_GROUP))["pending"] == 0
        await _drain(consumer)
    assert await _verdicts(redis, settings, episode_id) == [ev.step for ev in events]


async def test_failed_writes_are_scored_again_from_the_pending_entries(redis, settings):
    """If a batch's write fails, its entries stay pending and are re-scored."""
    settings = settings.model_copy(update={"batch_size": 3, "control_maxlen": 1000})
    episode_id, events = await _one_recording(redis, settings)
    stream = settings.keys.steps(settings.keys.shard_of(episode_id))
    async with dedicated(redis) as client:
        consumer = await _consumer(redis, client, settings, episode_id)
        real_send = consumer.writer.send

        async def broken(batch):
            raise ConnectionError("connection lost")

        consumer.writer.send = broken
        with pytest.raises(ConnectionError):
            await consumer.poll()  # start + steps 1-2 scored, not written
        assert (await redis.xpending(stream, DETECTOR_GROUP))["pending"] == 3
        consumer.writer.send = real_send  # ...and then Redis is back
        assert consumer.records == {}  # in-memory states forgotten: re-read from pending
        await _drain(consumer)
    assert await _verdicts(redis, settings, episode_id) == [ev.step for ev in events]


def test_stream_entries_reads_every_reply_shape():
    """redis-py's parsed replies (RESP2 and RESP3's extra wrapping) and raw RESP2 replies,
    one entry or several, and entries trimmed away while pending (no fields)."""
    one = {b"k": b"v"}
    parsed = [[b"s", [(b"1-0", one)]]]
    resp3 = {b"s": [[(b"1-0", one), (b"2-0", None)]]}
    raw_one = [[b"s", [[b"1-0", [b"k", b"v"]]]]]
    raw_two = [[b"s", [[b"1-0", [b"k", b"v"]], [b"2-0", None]]]]
    assert stream_entries(parsed) == [("s", [(b"1-0", one)])]
    assert stream_entries(raw_one) == [("s", [(b"1-0", one)])]
    assert (
        stream_entries(resp3) == stream_entries(raw_two) == [("s", [(b"1-0", one), (b"2-0", {})])]
    )
    assert stream_entries({b"s": [[]]}) == [("s", [])] and stream_entries(None) == []
