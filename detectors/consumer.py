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
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from detectors.policy import Decision, decide
from detectors.records import CheckpointError, EpisodeRecord, fingerprint, spec_field
from detectors.scoring import StepScore
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
from schemas.trace import EPISODES_FLIPPED, FLIPS_PREFIX, RECOVERIES, STEPS, encode_trace
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
    counts: dict[str, int] = field(default_factory=dict)  # HINCRBY of the shard's totals


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
        self.trace_maxlen = settings.trace_maxlen
        self.writer = BatchWriter(redis)
        self.records: dict[str, EpisodeRecord] = {}
        self._unreadable: dict[str, str] = {}  # episode -> why its spec checkpoint is not
        self._next_evict = 0.0  # monotonic time of the next idle-episode eviction
        self._sweep_cursor: int | None = None  # HSCAN cursor of the abandoned-state sweep
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
        await self._evict_idle()  # after the read: the last batch's writes have gone out
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
        now = time.monotonic()
        for entry_id, ev in events:
            batch.acks.append(entry_id)
            rec = self.records.get(ev.episode_id)
            if rec is not None:
                rec.seen_at = now
            try:
                if self._apply(batch, ev):
                    touched.add(ev.episode_id)
            except Exception as exc:  # a scorer bug must not stop the other episodes
                log.exception("scoring failed for episode %s", ev.episode_id)
                self._dead(batch, entry_id, None, f"scoring failed: {type(exc).__name__}")
        for episode_id in touched:
            rec = self.records.get(episode_id)
            if rec is None:
                continue
            state = rec.dump_state()
            if state is None:  # never write a NaN: reload the last good checkpoint instead
                log.error("episode %s: scorer state not finite; not checkpointed", episode_id)
                self.metrics.checkpoint_errors.inc()
                self.records.pop(episode_id, None)
                continue
            batch.states[episode_id] = state
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

    async def _evict_idle(self) -> None:
        """Drop from memory the episodes without an event for ``episode_idle_s`` (their
        checkpoints are in Redis and reload on their next step), and sweep one page of
        the shard's checkpoints for abandoned episodes (see :meth:`_sweep_abandoned`)."""
        now = time.monotonic()
        if now < self._next_evict:
            return
        idle_s = self.settings.episode_idle_s
        self._next_evict = now + min(idle_s / 4, 30.0)
        for episode_id in [e for e, r in self.records.items() if now - r.seen_at > idle_s]:
            del self.records[episode_id]
        await self._sweep_abandoned()

    async def _sweep_abandoned(self) -> None:
        """One HSCAN page of the shard's checkpoints: those of episodes not in memory whose
        summary has expired (EPISODE_TTL_S after their first step or registration, or
        never written) are deleted, so abandoned episodes leave Redis."""
        key = self.keys.detector_state(self.shard)
        cursor, page = await self.redis.hscan(key, self._sweep_cursor or 0, count=500)
        self._sweep_cursor = int(cursor) or None
        episodes = {(f.decode() if isinstance(f, bytes) else f).removesuffix(":spec") for f in page}
        episodes -= set(self.records)
        if not episodes:
            return
        ordered = sorted(episodes)
        pipe = self.redis.pipeline(transaction=False)
        for e in ordered:
            pipe.exists(self.keys.episode(e))
        gone = [e for e, n in zip(ordered, await pipe.execute(), strict=True) if not n]
        if gone:
            await self.redis.hdel(key, *gone, *(spec_field(e) for e in gone))
            log.info(
                "shard %d: dropped the checkpoints of %d abandoned episodes", self.shard, len(gone)
            )

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
            if spec_json is None:
                continue
            try:
                rec = self.records[episode_id] = EpisodeRecord.load(spec_json, state_json)
            except CheckpointError as exc:  # its entries are dead-lettered with the reason
                log.error("episode %s: %s", episode_id, exc)
                self.metrics.checkpoint_errors.inc()
                self._unreadable[episode_id] = str(exc)
                continue
            self._unreadable.pop(episode_id, None)
            if rec.note is not None:
                self.metrics.checkpoint_errors.inc()

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
            why = self._unreadable.get(ev.episode_id)
            reason = (
                f"checkpoint unreadable: {why}" if why else "no episode_started for this episode"
            )
            self._dead(batch, None, ev, reason)
            return False
        if ev.kind == "step":
            return self._score(batch, rec, ev)
        if ev.kind == "recovery_applied":
            if ev.action == "reset":  # a remind keeps the context: the flags stay raised
                rec.scorer.rearm()
            return True
        if ev.kind == "episode_finished":
            batch.finished.append(ev.episode_id)
            return False
        self._dead(batch, None, ev, f"unexpected kind {ev.kind!r} on the steps stream")
        return False

    def _score(self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent) -> bool:
        """Score one step and queue everything it causes; False when it is not scored."""
        if not self._fits(batch, rec, ev):
            return False
        if ev.step <= rec.last_step:
            return self._duplicate(batch, rec, ev)
        gap = self._gap(rec, ev.step)
        score = rec.scorer.update(ev)
        if not (math.isfinite(score.runaway_index) and math.isfinite(score.hazard)):
            # last guard (the decoder bounds every number): never write a NaN; the episode
            # reloads from its last good checkpoint
            log.error("episode %s step %d: non-finite score", ev.episode_id, ev.step)
            self.records.pop(ev.episode_id, None)
            self._dead(batch, None, ev, "scoring produced a non-finite value")
            return False
        rec.last_step = ev.step
        rec.remember(ev)
        control = rec.control_key
        if not control:
            control = rec.control_key = self.keys.control(ev.episode_id)
        self._flips(batch, rec, ev, score)
        dec, reminder = self._decide(batch, rec, ev, score, control)
        self._verdict(batch, rec, ev, score, control, dec, _joined(gap, dec.reason), reminder)
        self.metrics.processing_lag.observe(max(0.0, time.time() - ev.ts))
        return True

    def _fits(self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent) -> bool:
        """The step names the episode's objectives (a tool or text step may leave some
        out, pointers.py, never add any); else it is dead-lettered."""
        names = rec.names
        if names == ev.action.keys() and names == ev.observation.keys():
            return True
        partial = ev.tool_calls or ev.text is not None or ev.state is not None
        if partial and ev.action.keys() <= names >= ev.observation.keys():
            return True
        expected = list(rec.spec.objectives.names)
        self._dead(batch, None, ev, f"objectives do not match the episode's {expected}")
        return False

    def _flips(self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent, score: StepScore) -> None:
        """Count the step and each flag it raised (metrics, the page's totals), and queue a
        FlipEvent per flag: a flip is counted here and only here."""
        env = rec.spec.environment or "custom"
        counter = self._steps_metric.get(env)
        if counter is None:
            counter = self._steps_metric[env] = self.metrics.steps.labels(env)
        counter.inc()
        self.metrics.runaway_index.observe(score.runaway_index)
        counts = batch.counts
        counts[STEPS] = counts.get(STEPS, 0) + 1
        if score.detections and not rec.flips:
            counts[EPISODES_FLIPPED] = counts.get(EPISODES_FLIPPED, 0) + 1
        for d in score.detections:
            rec.flips += 1
            self.metrics.flips.labels(env, d.flag).inc()
            counts[FLIPS_PREFIX + d.flag] = counts.get(FLIPS_PREFIX + d.flag, 0) + 1
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

    def _verdict(
        self,
        batch: _Batch,
        rec: EpisodeRecord,
        ev: StepEvent,
        score: StepScore,
        control: str,
        dec: Decision,
        reason: str | None,
        reminder: str | None,
    ) -> None:
        """Queue the step's verdict, its trace entry (the page) and the episode summary."""
        flags, detected = sorted(score.flags), [d.flag for d in score.detections]
        verdict = encode_verdict(
            ev.episode_id,
            ev.step,
            dec.verdict,
            score.savepoint_step,
            score.runaway_index,
            score.hazard,
            flags,
            detected,
            ev.ts,
            dec.cause,
            dec.policy,
            reason,
            reminder,
        )
        self._control(batch, control, ev.episode_id, verdict)
        if self.trace_maxlen:
            trace = encode_trace(
                ev,
                score.runaway_index,
                score.hazard,
                flags,
                detected,
                dec.verdict,
                dec.cause,
                score.savepoint_step,
            )
            batch.xadds.append((self.keys.trace(ev.episode_id), trace, self.trace_maxlen))
        summary = batch.summaries[ev.episode_id] = {
            "last_step": ev.step,
            "runaway_index": score.runaway_index,
            "hazard": score.hazard,
            "flags": ",".join(flags),
            "flips": rec.flips,
        }
        if rec.missing:
            summary["missing_steps"] = rec.missing
        if not rec.summary_ttl_set:  # HSET keeps a key's TTL: one EXPIRE per episode is enough
            rec.summary_ttl_set = True
            batch.expire.append(ev.episode_id)

    def _decide(
        self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent, score: StepScore, control: str
    ) -> tuple[Decision, str | None]:
        """The step's verdict under the episode's policy (detectors/policy.py), and the
        reminder; a remind or reset also goes out as a RecoveryCommand (applied once)."""
        if score.safe and rec.first_safe is None:
            rec.first_safe = ev.step
        reminder = None
        dec = decide(score, rec.spec, rec.first_safe, rec.scorer.loop_note)
        if dec.cause is not None:
            self.metrics.verdicts.labels(dec.verdict, dec.cause).inc()
        if dec.command is not None:
            rec.recoveries_sent += 1
            if dec.verdict == "reset":  # a recovery restores the context; a reminder does not
                batch.counts[RECOVERIES] = batch.counts.get(RECOVERIES, 0) + 1
            if dec.verdict == "remind" or rec.spec.detector.reminder:
                reminder = reminder_text(rec.spec.objectives)
            cmd = RecoveryCommand(
                episode_id=ev.episode_id,
                step=ev.step,
                command_id=f"{ev.episode_id}:{dec.onset_step}:{rec.recoveries_sent}",
                action=dec.verdict,
                cause=dec.cause,
                savepoint_step=score.savepoint_step,
                reminder=reminder,
                reason=dec.reason or "",
                step_ts=ev.ts,
            )
            self._control(batch, control, ev.episode_id, encode(cmd))
        return dec, reminder

    def _duplicate(self, batch: _Batch, rec: EpisodeRecord, ev: StepEvent) -> bool:
        """A step at or below the last one: a redelivery is dropped (counted); one that
        differs from the entry scored at that step is dead-lettered as a conflict. Older
        steps than the last RECENT_STEPS cannot be compared and count as duplicates."""
        known = rec.recent.get(ev.step)
        if known is not None and known != fingerprint(ev, rec.values):
            self._dead(batch, None, ev, f"conflict: step {ev.step} differs from the one scored")
        else:
            self.metrics.duplicates.inc()
        return False

    def _gap(self, rec: EpisodeRecord, step: int) -> str | None:
        """The verdict's reason for this step: a note from loading, or the missing steps."""
        note, rec.note = rec.note, None
        if note is None and step > rec.last_step + 1:
            rec.missing += step - rec.last_step - 1
            first, last = rec.last_step + 1, step - 1
            note = f"steps {first}-{last} missing" if last > first else f"step {first} missing"
        return note

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
            if self.trace_maxlen:
                writes.expire(self.keys.trace(episode_id), EPISODE_TTL_S)
        if batch.counts:
            writes.hincrby(self.keys.totals(self.shard), batch.counts)
        if batch.acks:
            writes.xack(self.stream, DETECTOR_GROUP, batch.acks)
        return writes


def _joined(*reasons: str | None) -> str | None:
    """The verdict's reason: what the detector noticed (a gap, a reset state) and why the
    policy acted, in that order."""
    parts = [r for r in reasons if r]
    return "; ".join(parts) if parts else None
