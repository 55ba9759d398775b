"""Supervision of the sidecar's in-process background tasks (the detector).

Why: a task that ended with an exception used to vanish silently while the service
answered every step with the fail mode. :class:`Supervisor` runs a fresh instance of
the task after each failure, with the exception logged, a jittered exponential backoff
and a restart counter; when it fails ``max_failures`` times within ``window_s`` it is
reported unhealthy (``/healthz`` answers 503) until it has run a whole window without
failing, and is still retried at the longest backoff (:mod:`schemas.backoff`, the one
jittered backoff), so it recovers by itself when the cause goes away.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from schemas.backoff import backoff_delay

log = logging.getLogger(__name__)

Task = Callable[[asyncio.Event], Awaitable[None]]
_RNG = random.Random()  # restart jitter


@dataclass
class Health:
    """What makes ``/healthz`` fail: named problems, set and cleared by their owners."""

    problems: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, problem: str | None) -> None:
        if problem is None:
            self.problems.pop(name, None)
        else:
            self.problems[name] = problem


@dataclass
class Supervisor:
    name: str
    make: Callable[[], Task]  # a fresh task for every (re)start
    health: Health
    restarts: Counter
    max_failures: int = 5
    window_s: float = 60.0
    base_s: float = 0.2
    max_s: float = 10.0
    _failures: deque[float] = field(default_factory=deque)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the task until ``stop``, restarting it whenever it fails or ends early."""
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            # healthy again once it has run a whole window without failing
            healed = asyncio.get_running_loop().call_later(
                self.window_s, self.health.set, self.name, None
            )
            try:
                await self.make()(stop)
                if stop.is_set():
                    return
                raise RuntimeError("it returned before being asked to stop")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting it", self.name)
            finally:
                healed.cancel()
            now = time.monotonic()
            if now - started > self.window_s:
                attempt = 0  # it ran fine for a while: start the backoff over
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.window_s:
                self._failures.popleft()
            if len(self._failures) >= self.max_failures:
                self.health.set(
                    self.name,
                    f"{self.name} failed {len(self._failures)} times in {self.window_s:g} s",
                )
            self.restarts.labels(self.name).inc()
            delay = backoff_delay(attempt, self.base_s, self.max_s, _RNG, jitter=0.5)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
