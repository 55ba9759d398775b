"""Every Redis key and stream name, in one place.

Keys of one shard share the hash tag ``{s<n>}`` so that a Redis Cluster keeps them on one
node and a detector can write its state, the commands a step caused and the ack in one
MULTI/EXEC. The episode id picks the shard (CRC32), so all of an episode's entries are
ordered in one stream.
"""

import zlib
from dataclasses import dataclass

DETECTOR_GROUP = "detectors"
EPISODE_TTL_S = 7 * 24 * 3600  # episode summaries, control streams and the episode index
WORKER_GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "runaway"
    shards: int = 1

    def shard_of(self, episode_id: str) -> int:
        return zlib.crc32(episode_id.encode()) % self.shards

    def _tagged(self, shard: int, name: str) -> str:
        return f"{self.prefix}:{{s{shard}}}:{name}"

    # streams
    def steps(self, shard: int) -> str:
        """Episode starts, steps, applied recoveries and episode ends; read by detectors."""
        return self._tagged(shard, "steps")

    def flips(self, shard: int) -> str:
        """FlipEvents (all episodes of the shard), for dashboards, SSE and reports."""
        return self._tagged(shard, "flips")

    def control(self, episode_id: str) -> str:
        """Verdicts and RecoveryCommands for one episode: its log, for the API and tools."""
        return self._tagged(self.shard_of(episode_id), f"control:{episode_id}")

    def verdicts(self, shard: int) -> str:
        """The same Verdicts and RecoveryCommands for every episode of the shard, each
        tagged with its episode id (field ``e``): workers and the sidecar follow all
        their episodes with one read per shard instead of one key per episode."""
        return self._tagged(shard, "verdicts")

    def trace(self, episode_id: str) -> str:
        """One entry per scored step of the episode (schemas/trace.py), for the page."""
        return self._tagged(self.shard_of(episode_id), f"trace:{episode_id}")

    def deadletter(self, shard: int) -> str:
        """Entries that could not be processed, with the reason."""
        return self._tagged(shard, "deadletter")

    # detector bookkeeping
    def detector_state(self, shard: int) -> str:
        """Hash: episode id -> checkpointed scorer state."""
        return self._tagged(shard, "detector-state")

    def totals(self, shard: int) -> str:
        """Hash of the shard's running totals (flips by flag, recoveries, steps), written
        by the detector beside ``runaway_flips_total``; the API adds the shards up."""
        return self._tagged(shard, "totals")

    def lease(self, shard: int) -> str:
        """Which detector owns the shard (SET NX PX); keeps each episode on one reader."""
        return self._tagged(shard, "lease")

    def detectors(self) -> str:
        """Sorted set: detector consumer name -> last heartbeat (Unix seconds)."""
        return f"{self.prefix}:detectors"

    # episodes
    def episode(self, episode_id: str) -> str:
        """Hash of one episode's summary (spec, last step, RI, flips), for the API."""
        return self._tagged(self.shard_of(episode_id), f"episode:{episode_id}")

    def episodes(self) -> str:
        """Sorted set: episode id -> start time, for listing."""
        return f"{self.prefix}:episodes"

    def active_episodes(self) -> str:
        """Sorted set: unfinished sidecar episode id -> its last activity (Unix seconds),
        the count that RUNAWAY_MAX_ACTIVE_EPISODES bounds."""
        return f"{self.prefix}:active-episodes"

    def jobs(self) -> str:
        """Episode specs waiting for a worker (consumer group ``workers``)."""
        return f"{self.prefix}:jobs"

    def jobs_deadletter(self) -> str:
        """Jobs that could not be run (bad spec, delivered too often), with the reason."""
        return f"{self.prefix}:jobs:deadletter"

    # process health
    def heartbeat(self, role: str, name: str) -> str:
        """A worker's or detector's heartbeat (JSON, with a TTL): what it is doing now."""
        return f"{self.prefix}:heartbeat:{role}:{name}"

    def heartbeats(self, role: str) -> str:
        """Sorted set: process name -> last heartbeat (Unix seconds), kept after the
        heartbeat key expires so that ``status`` can list stale processes."""
        return f"{self.prefix}:heartbeats:{role}"

    def pattern(self) -> str:
        """Every key of this prefix (SCAN ``MATCH``), for cleaning up a run."""
        return f"{self.prefix}:*"

    def all_steps(self) -> list[str]:
        return [self.steps(s) for s in range(self.shards)]

    def all_flips(self) -> list[str]:
        return [self.flips(s) for s in range(self.shards)]
