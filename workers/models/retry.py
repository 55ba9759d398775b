"""The one retry policy for model calls: bounded, jittered, honouring ``Retry-After``.

Why one place: the SDKs' own retries are switched off (``max_retries=0``) so that a
call's attempts, waits and timeouts are decided here, counted in metrics and bounded
(a sample that retried for 24 days is the warning). Full jitter keeps many episodes
hitting the same provider from retrying in lock-step.

A cancellation is never a failure: ``asyncio.CancelledError`` passes straight through,
without a retry and without being counted as an error.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol, TypeVar

from schemas.backoff import backoff_delay
from workers.models.errors import (
    AttemptFailure,
    ModelError,
    ModelGaveUp,
    ModelRejected,
    ModelResponseError,
)

T = TypeVar("T")


# backoff jitter: one generator for every call (seeding one per call read os.urandom)
_JITTER = random.Random()


class RetryObserver(Protocol):
    """Told about every attempt, so metrics stay out of the policy."""

    def attempt_done(self, outcome: str, latency_s: float) -> None: ...

    def retrying(self, reason: str, delay_s: float) -> None: ...


class _NoObserver:
    def attempt_done(self, outcome: str, latency_s: float) -> None:
        pass

    def retrying(self, reason: str, delay_s: float) -> None:
        pass


Classifier = Callable[[Exception], AttemptFailure | None]
Gate = Callable[[], AbstractAsyncContextManager[object]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one model call.

    ``max_attempts`` counts the first try. The per-attempt timeout starts once the gate
    (concurrency slot and rate-limit token) is held, so queueing is not a timeout.
    """

    max_attempts: int = 5
    attempt_timeout_s: float = 60.0
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.attempt_timeout_s <= 0:
            raise ValueError("attempt_timeout_s must be positive")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**retry)] (``retry`` from 0)."""
        return backoff_delay(retry, self.base_delay_s, self.max_delay_s, rng, jitter=1.0)

    def delay_for(self, failure: AttemptFailure, retry: int, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now.

        With a ``Retry-After`` the wait is at least that long (plus a little jitter);
        one longer than ``max_retry_after_s`` is not worth waiting for.
        """
        if failure.retry_after_s is not None:
            if failure.retry_after_s > self.max_retry_after_s:
                return None
            return failure.retry_after_s + rng.uniform(0.0, min(0.1, self.base_delay_s))
        return self.backoff_s(retry, rng)

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        provider: str,
        classify: Classifier,
        gate: Gate | None = None,
        observer: RetryObserver | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> T:
        """Run ``call`` until it succeeds, fails for good, or attempts run out.

        ``classify`` turns an exception into an :class:`AttemptFailure` (None: not ours,
        re-raised as is). Raises :class:`ModelGaveUp` or the non-retriable
        :class:`ModelError` the classifier's failure maps to.
        """
        observer = observer or _NoObserver()
        rng = rng or _JITTER
        clock = clock or asyncio.get_running_loop().time
        last: AttemptFailure | None = None
        for attempt in range(1, self.max_attempts + 1):
            started = 0.0
            try:
                async with gate() if gate is not None else nullcontext():
                    started = clock()
                    async with asyncio.timeout(self.attempt_timeout_s):
                        result = await call()
            except asyncio.CancelledError:
                if started:
                    observer.attempt_done("cancelled", clock() - started)
                raise
            except TimeoutError:
                last = AttemptFailure(
                    "timeout", True, f"no answer within {self.attempt_timeout_s:g} s"
                )
            except ModelError:
                observer.attempt_done("malformed", clock() - started)
                raise
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    observer.attempt_done("error", clock() - started)
                    raise
                last = failure
            else:
                observer.attempt_done("ok", clock() - started)
                return result

            observer.attempt_done(last.reason, clock() - started)
            if not last.retriable:
                raise last_error(last, provider, attempt, gave_up=False)
            if attempt == self.max_attempts:
                break
            delay = self.delay_for(last, attempt - 1, rng)
            if delay is None:
                raise last_error(last, provider, attempt, gave_up=True, patience=True)
            observer.retrying(last.reason, delay)
            await sleep(delay)
        assert last is not None
        raise last_error(last, provider, self.max_attempts, gave_up=True)


def last_error(
    failure: AttemptFailure,
    provider: str,
    attempts: int,
    *,
    gave_up: bool,
    patience: bool = False,
) -> ModelError:
    """The error a caller sees: what failed, how often, never a key or a request body."""
    if not gave_up:
        cls = ModelResponseError if failure.reason == "malformed" else ModelRejected
        return cls(
            f"{provider}: {failure.detail} (not retried)", provider=provider, status=failure.status
        )
    why = (
        f"server asked to wait {failure.retry_after_s:g} s, more than allowed"
        if patience and failure.retry_after_s is not None
        else f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    )
    return ModelGaveUp(
        f"{provider}: gave up {why}; last failure: {failure.detail}",
        provider=provider,
        attempts=attempts,
        reason=failure.reason,
        status=failure.status,
    )
