"""Per-provider bounded concurrency and a shared token-bucket rate limit.

Why: hundreds of episodes run at once, but a provider (or one local llama.cpp server)
only takes so many requests at a time and per second. Limits are keyed by connection,
``(provider, base_url)``, so two local servers do not share a budget while every agent
talking to the same endpoint does. The registry is an object passed in (no hidden
module-level singleton), so tests and separate services get their own.

Nothing here binds to an event loop at construction: semaphores and locks are made on
first use, inside the running loop.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

LimitKey = tuple[str, str]  # (provider, base_url or "")


class TokenBucket:
    """``rate`` tokens per second, up to ``burst`` saved; ``acquire`` waits for one.

    Waiters are served in arrival order (a lock around the wait), so one busy agent cannot
    starve the others.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None
        self._lock: asyncio.Lock | None = None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _refill(self) -> None:
        now = self._now()
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> None:
        """Take one token, waiting as long as needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0


@dataclass(slots=True)
class _Lane:
    semaphore: asyncio.Semaphore
    bucket: TokenBucket | None
    in_flight: int = 0


@dataclass(slots=True)
class ModelLimits:
    """The registry of limits for every (provider, base_url) a process talks to.

    ``concurrency`` calls at once and ``rate_limit_rps`` requests per second per key,
    unless ``overrides`` names other numbers for a key.
    """

    concurrency: int = 16
    rate_limit_rps: float | None = None
    overrides: dict[LimitKey, tuple[int, float | None]] = field(default_factory=dict)
    _lanes: dict[LimitKey, _Lane] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: object) -> "ModelLimits":
        """Build from the settings (``model_concurrency``, ``model_rate_limit_rps``).

        No ``model_concurrency`` means the worker's ``concurrency``: every episode waits on
        at most one call, so a lower cap would only make episodes queue for a slot that a
        local server (vLLM, llama.cpp with parallel slots) or a hosted API would have
        served at once; hosted rate limits are per minute and are met by the rate limit and
        the 429/Retry-After handling of the retry policy.
        """
        concurrency = getattr(settings, "model_concurrency", None)
        if concurrency is None:
            concurrency = getattr(settings, "concurrency", None) or 16
        return cls(
            concurrency=concurrency,
            rate_limit_rps=getattr(settings, "model_rate_limit_rps", None),
        )

    def _lane(self, key: LimitKey) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            concurrency, rps = self.overrides.get(key, (self.concurrency, self.rate_limit_rps))
            lane = _Lane(asyncio.Semaphore(concurrency), TokenBucket(rps) if rps else None)
            self._lanes[key] = lane
        return lane

    def in_flight(self, provider: str, base_url: str | None = None) -> int:
        """Calls holding a slot now for this key (for tests and /metrics)."""
        lane = self._lanes.get((provider, base_url or ""))
        return lane.in_flight if lane is not None else 0

    @asynccontextmanager
    async def slot(self, provider: str, base_url: str | None = None) -> AsyncIterator[None]:
        """Hold one concurrency slot (and spend one rate token) for one HTTP attempt."""
        lane = self._lane((provider, base_url or ""))
        async with lane.semaphore:
            if lane.bucket is not None:
                await lane.bucket.acquire()
            lane.in_flight += 1
            try:
                yield
            finally:
                lane.in_flight -= 1
