"""One shard of the steps stream, read in a consumer group and scored in order.

Each shard is owned by one detector at a time (see :mod:`detectors.service`), so every
step of an episode is scored in stream order. Per batch: decode (bad entries go to the
dead-letter stream with the reason), load missing episode states from the checkpoint
hash, score, then write verdicts, flips, recovery commands (to the episode's control
stream and the shard's verdicts stream), new checkpoints and the acks in one atomic call
(:mod:`schemas.batch_writes`). Nothing is acked before the state and commands it caused
are written.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from detectors.records import EpisodeRecord, spec_field
from schemas.batch_writes import BatchWriter, WriteBatch
from schemas.events import FlipEvent, RecoveryCommand, StepEvent
from schemas.keys import DETECTOR_GROUP, EPISODE_TTL_S, Keys
from schemas.metrics import DetectorMetrics
from schemas.redis_io import (
    Entry,
    autoclaim_entries,
    stream_entries,
)
from schemas.reminder import reminder_text
from schemas.settings import Settings
from schemas.wire import BadEntry, decode, encode, encode_verdict, routed

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """What one batch will write, gathered before a single transaction."""

    xadds: list[tuple[str, dict[str, bytes], int]] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    expire: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    acks: list[bytes] = field(default_factory=list)


class ShardConsumer:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        shard: int,
        consumer: str,
        metrics: DetectorMetrics,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys: Keys = settings.keys
        self.shard = shard
        self.consumer = consumer
        self.metrics = metrics
        self.stream = self.keys.steps(shard)
        self.verdicts = self.keys.verdicts(shard)
        self.verdicts_maxlen = settings.verdicts_maxlen
        self.writer = BatchWriter(redis)
        self.records: dict[str, EpisodeRecord] = {}
        self._cursor = "0"  # own pending entries first, then new ones (">")
        self._steps_metric: dict[str, Any] = {}

    async def take_over(self) -> int:
        """Claim every pending entry of the shard (its owner is gone), re-read from there."""
        self._forget()
        claimed, cursor = 0, b"0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream,
                DETECTOR_GROUP,
                self.consumer,
                min_idle_time=0,
                start_id=cursor,
                count=1000,
            )
            cursor, entries, deleted = autoclaim_entries(reply)
            claimed += len(entries)
            if deleted:
                await self.redis.xack(self.stream, DETECTOR_GROUP, *deleted)
            if cursor == b"0-0":
                break
        await self._deadletter_overdelivered()
        self.metrics.reclaimed.inc(claimed)
        return claimed

    async def _deadletter_overdelivered(self) -> None:
        pending = await self.redis.xpending_range(
            self.stream, DETECTOR_GROUP, min="-", max="+", count=10_000, consumername=self.consumer
        )
        for p in pending:
            if p["times_delivered"] > self.settings.max_deliveries:
                entry_id = p["message_id"]
                batch = _Batch()
                self._dead(batch, entry_id, {}, f"delivered {p['times_delivered']} times")
                await self._commit(batch)

    async def poll(self, block_ms: int | None = None) -> int:
        """Read and handle one batch; the number of entries handled (0 when idle)."""
        block = None
        if self._cursor != "0":  # our own pending entries come at once; new ones may wait
            block = block_ms or self.settings.block_ms
        reply = await self.redis.xreadgroup(
            DETECTOR_GROUP,
            self.consumer,
            {self.stream: self._cursor},
            count=self.settings.batch_size,
            block=block,
        )
        entries = [e for _, es in stream_entries(reply) for e in es]
        if not entries:
            self._cursor = ">"
            return 0
        self.metrics.batch.observe(len(entries))
        await self.handle(entries)
        return len(entries)

    async def handle(self, entries: list[Entry]) -> None:
        batch = _Batch()
        events: list[tuple[bytes, Any]] = []
        for entry_id, fields in entries:
            try:
                events.append((entry_id, decode(fields)))
            except BadEntry as exc:
                self._dead(batch, entry_id, fields, str(exc))
        await self._load_missing({ev.episode_id for _, ev in events})
        touched: set[str] = set()
        for entry_id, ev in events:
            batch.acks.append(entry_id)
            try:
                if self._apply(batch, ev):
                    touched.add(ev.episode_id)
            except Exception as exc:  # a scorer bug must not stop the other episodes
                log.exception("scoring failed for episode %s", ev.episode_id)
                self._dead(batch, entry_id, None, f"scoring failed: {type(exc).__name__}")
        for episode_id in touched:
            rec = self.records.get(episode_id)
            if rec is not None:
                batch.states[episode_id] = rec.dump_state()
        await self._send(self._writes(batch), batch.finished)

    async def _send(self, writes: WriteBatch, finished: list[str]) -> None:
        try:
            await self.writer.send(writes)
        except BaseException:
            self._forget()
            raise
        self._drop_finished(finished)

    def _forget(self) -> None:
        """In-memory states may be ahead of Redis: forget them, re-read our pending."""
        self.records.clear()
        self._cursor = "0"

    def _drop_finished(self, episode_ids: list[str]) -> None:
        for episode_id in episode_ids:
            self.records.pop(episode_id, None)

    async def _load_missing(self, episode_ids: set[str]) -> None:
        missing = [e for e in episode_ids if e not in self.records]
        if not missing:
            return
        fields = [f for e in missing for f in (spec_field(e), e)]
        values = await self.redis.hmget(self.keys.detector_state(self.shard), fields)
        for i, episode_id in enumerate(missing):
            spec_json, state_json = values[2 * i], values[2 * i + 1]
            if spec_json is not None:
                self.records[episode_id] = EpisodeRecord.load(spec_json, state_json)

    def _apply(self, batch: _Batch, ev: Any) -> bool:
        """Apply one event; True when the episode's state changed."""
        rec = self.records.get(ev.episode_id)
        if ev.kind == "episode_started":
            if rec is not None and rec.spec == ev.spec:
                return False  # redelivered start
            rec = self.records[ev.episode_id] = EpisodeRecord.start(ev.spec)
            batch.states[spec_field(ev.episode_id)] = rec.dump_spec()
            return True
        if rec is None:
            self._dead(batch, None, ev, "no episode_started for this episode")
            return False
        if ev.kind == "step":
            return self._score(batch, rec, ev)
        if ev.kind == "recovery_applied":
            rec.scorer.rearm()
            return True
        if ev.kind == "episode_finished":
            batch.finished.append(ev.episode_id)
            return False
        self._dead(batch, None, ev, f"unexpected kind {ev.kind!r} on the steps stream")
        return False

    def _score(self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent) -> bool:
        if ev.step <= rec.last_step:
            self.metrics.duplicates.inc()
            return False
        names = rec.names
        if names != ev.action.keys() or names != ev.observation.keys():
            expected = list(rec.spec.objectives.names)
            self._dead(batch, None, ev, f"objectives do not match the episode's {expected}")
            return False
        score = rec.scorer.update(ev)
        rec.last_step = ev.step
        rec.last_score = score
        env = rec.spec.environment or "custom"
        counter = self._steps_metric.get(env)
        if counter is None:
            counter = self._steps_metric[env] = self.metrics.steps.labels(env)
        counter.inc()
        self.metrics.runaway_index.observe(score.runaway_index)
        control = rec.control_key
        if not control:
            control = rec.control_key = self.keys.control(ev.episode_id)
        reset = False
        for d in score.detections:
            rec.flips += 1
            self.metrics.flips.labels(env, d.flag).inc()
            flip = FlipEvent(
                episode_id=ev.episode_id,
                step=ev.step,
                flag=d.flag,
                onset_step=d.onset_step,
                mode=d.mode,
                objective=d.objective,
                runaway_index=score.runaway_index,
                step_ts=ev.ts,
            )
            batch.xadds.append(
                (self.keys.flips(self.shard), encode(flip), self.settings.flips_maxlen)
            )
            if d.flag == "runaway" and rec.spec.detector.recover:
                reset = True
                rec.recoveries_sent += 1
                cfg = rec.spec.detector
                cmd = RecoveryCommand(
                    episode_id=ev.episode_id,
                    step=ev.step,
                    command_id=f"{ev.episode_id}:{d.onset_step}:{rec.recoveries_sent}",
                    savepoint_step=score.savepoint_step,
                    reminder=reminder_text(rec.spec.objectives) if cfg.reminder else None,
                    reason=f"{d.mode} since step {d.onset_step}",
                    step_ts=ev.ts,
                )
                self._control(batch, control, ev.episode_id, encode(cmd))
        verdict = encode_verdict(
            ev.episode_id,
            ev.step,
            "reset" if reset else "continue",
            score.savepoint_step,
            score.runaway_index,
            score.hazard,
            sorted(score.flags),
            [d.flag for d in score.detections],
            ev.ts,
        )
        self._control(batch, control, ev.episode_id, verdict)
        batch.summaries[ev.episode_id] = {
            "last_step": ev.step,
            "runaway_index": score.runaway_index,
            "hazard": score.hazard,
            "flags": ",".join(sorted(score.flags)),
            "flips": rec.flips,
        }
        if not rec.summary_ttl_set:  # HSET keeps a key's TTL: one EXPIRE per episode is enough
            rec.summary_ttl_set = True
            batch.expire.append(ev.episode_id)
        self.metrics.processing_lag.observe(max(0.0, time.time() - ev.ts))
        return True

    def _control(self, batch: _Batch, control: str, episode_id: str, fields: dict) -> None:
        """A control entry goes to the episode's log and to the shard's verdicts stream,
        which the episode's worker or sidecar follows."""
        batch.xadds.append((control, fields, self.settings.control_maxlen))
        batch.xadds.append((self.verdicts, routed(fields, episode_id), self.verdicts_maxlen))

    def _dead(self, batch: _Batch, entry_id: bytes | None, raw: Any, reason: str) -> None:
        """Move an entry to the dead-letter stream with its reason (and ack it)."""
        self.metrics.deadletters.labels(reason.split(":")[0][:40]).inc()
        if isinstance(raw, dict):
            payload = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
            original = orjson.dumps(payload, default=repr)[:2048]
        elif raw is not None:
            original = raw.model_dump_json(exclude={"text"}).encode()[:2048]
        else:
            original = b""
        fields = {
            "reason": reason.encode(),
            "stream": self.stream.encode(),
            "entry_id": entry_id or b"",
            "original": original,
        }
        batch.xadds.append(
            (self.keys.deadletter(self.shard), fields, self.settings.deadletter_maxlen)
        )
        if entry_id is not None:
            batch.acks.append(entry_id)

    async def _commit(self, batch: _Batch) -> None:
        await self._send(self._writes(batch), batch.finished)

    def _writes(self, batch: _Batch) -> WriteBatch:
        """Everything a batch writes, for one atomic call."""
        writes = WriteBatch()
        for stream, fields, maxlen in batch.xadds:
            writes.xadd(stream, fields, maxlen)
        state_key = self.keys.detector_state(self.shard)
        if batch.states:
            writes.hset(state_key, batch.states)
        if batch.finished:
            writes.hdel(state_key, [*batch.finished, *(spec_field(e) for e in batch.finished)])
        for episode_id, summary in batch.summaries.items():
            writes.hset(self.keys.episode(episode_id), summary)
        for episode_id in batch.expire:
            writes.expire(self.keys.episode(episode_id), EPISODE_TTL_S)
        if batch.acks:
            writes.xack(self.stream, DETECTOR_GROUP, batch.acks)
        return writes
