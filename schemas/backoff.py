"""The one jittered exponential backoff, for every loop that retries Redis or a model.

Why one place: the worker, the publisher, the detector's shard loops and the sidecar's
feed each had a hand-written ``backoff = min(backoff * 2, 2.0)`` loop without jitter, so
after a Redis restart every process and task came back in lock-step. Here the wait
before retry ``n`` (from 0) is drawn from ``[c * (1 - jitter), c]`` with
``c = min(max_s, base_s * 2**n)``: ``jitter=1`` is "full jitter" (what the model retry
policy uses), the default 0.5 keeps at least half the ceiling so a dead server is not
polled in a hot loop. ``max_attempts`` bounds the retries where giving up is right.
"""

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

# one generator for every backoff (seeding one per call would read os.urandom each time)
_JITTER = random.Random()


def backoff_delay(
    retry: int, base_s: float, max_s: float, rng: random.Random, jitter: float = 1.0
) -> float:
    """Seconds to wait before retry ``retry`` (from 0): jittered, capped at ``max_s``."""
    ceiling = min(max_s, base_s * (2 ** min(retry, 64)))
    return rng.uniform(ceiling * (1.0 - jitter), ceiling)


@dataclass(slots=True)
class Backoff:
    """State of one retry loop: call :meth:`wait` after a failure, :meth:`reset` after a
    success. :meth:`wait` returns False once ``max_attempts`` retries were spent."""

    base_s: float = 0.05
    max_s: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    rng: random.Random = field(default=_JITTER, repr=False)
    retries: int = 0

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < self.base_s:
            raise ValueError("backoff needs 0 <= base_s <= max_s")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be in [0, 1]")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be at least 0")

    @property
    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.retries >= self.max_attempts

    def next_delay(self) -> float:
        """The next wait, counting it as a retry."""
        delay = backoff_delay(self.retries, self.base_s, self.max_s, self.rng, self.jitter)
        self.retries += 1
        return delay

    def reset(self) -> None:
        self.retries = 0

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Sleep the next delay (cut short by ``stop``); False when retries are spent."""
        if self.exhausted:
            return False
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
        return True
