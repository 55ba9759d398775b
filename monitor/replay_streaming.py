"""The default ``replay`` backend: trajectories go through Redis and the streaming detector.

All trajectories are published at once (pipelined), one detector scores them in burst
mode, and the verdicts and flips it wrote are read back into the same
:class:`~detectors.offline.TrajectoryResult` the offline backend produces.
"""

import asyncio
import uuid

import redis.asyncio as aioredis

from detectors.offline import TrajectoryResult
from detectors.service import DetectorService
from monitor.embedded_redis import redis_url_or_embedded
from monitor.pipeline import delete_keys
from monitor.trajectories import Trajectory
from schemas.events import EpisodeFinished, EpisodeStarted
from schemas.redis_io import connect
from schemas.settings import Settings
from schemas.wire import decode
from workers.publisher import StreamPublisher


def score_streaming(trajectories: list[Trajectory], settings: Settings) -> list[TrajectoryResult]:
    return asyncio.run(_score(trajectories, settings))


async def _score(trajectories: list[Trajectory], settings: Settings) -> list[TrajectoryResult]:
    run_id = f"replay-{uuid.uuid4().hex[:8]}"
    longest = max((len(t.events) for t in trajectories), default=1)
    settings = settings.model_copy(
        update={
            "key_prefix": f"{settings.key_prefix}-{run_id}",
            "control_maxlen": max(settings.control_maxlen, 2 * longest + 10),
        }
    )
    async with redis_url_or_embedded(settings.redis_url) as url:
        redis = connect(url)
        try:
            ids = [f"{run_id}-{i:05d}" for i in range(len(trajectories))]
            await _publish(redis, settings, trajectories, ids)
            await DetectorService(redis, settings, name=run_id).run_until_idle()
            return [
                await _collect(redis, settings, t, e)
                for t, e in zip(trajectories, ids, strict=True)
            ]
        finally:
            await delete_keys(redis, settings.keys)
            await redis.aclose()


async def _publish(
    redis: aioredis.Redis, settings: Settings, trajectories: list[Trajectory], ids: list[str]
) -> None:
    keys = settings.keys
    publisher = StreamPublisher(redis, max_batch=5000)
    maxlen = max(settings.steps_maxlen, 10 * sum(len(t.events) + 2 for t in trajectories))
    sends = []
    for traj, episode_id in zip(trajectories, ids, strict=True):
        stream = keys.steps(keys.shard_of(episode_id))
        spec = traj.spec.model_copy(update={"episode_id": episode_id})
        events = [EpisodeStarted(episode_id=episode_id, spec=spec)]
        events += [e.model_copy(update={"episode_id": episode_id}) for e in traj.events]
        events.append(EpisodeFinished(episode_id=episode_id, step=len(traj.events)))
        sends += [publisher.publish(stream, e, maxlen) for e in events]
    try:
        await asyncio.gather(*sends)
    finally:
        await publisher.aclose()


async def _collect(
    redis: aioredis.Redis, settings: Settings, traj: Trajectory, episode_id: str
) -> TrajectoryResult:
    res = TrajectoryResult(source=traj.source, benchmark=traj.benchmark)
    for _, fields in await redis.xrange(settings.keys.control(episode_id)):
        ev = decode(fields)
        if ev.kind == "verdict":
            res.steps += 1
            res.runaway_index = ev.runaway_index
    flips = settings.keys.flips(settings.keys.shard_of(episode_id))
    for _, fields in await redis.xrange(flips):
        ev = decode(fields)
        if ev.episode_id != episode_id:
            continue
        if ev.flag == "runaway" and not res.flipped:
            res.flipped, res.flip_step, res.detected_step = True, ev.onset_step, ev.step
            res.flip_mode, res.flip_objective = ev.mode, ev.objective
        elif ev.flag == "self_imitation" and not res.self_imitation:
            res.self_imitation, res.self_imitation_step = True, ev.onset_step
            res.self_imitation_detected_step = ev.step
        elif ev.flag == "over_exploitation" and not res.over_exploitation:
            res.over_exploitation, res.over_exploitation_step = True, ev.onset_step
            res.over_exploitation_detected_step = ev.step
    return res
