"""The retry policy on its own: decisions, waits and bounds, with a fake clock."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from workers.models.errors import (
    AttemptFailure,
    ModelGaveUp,
    ModelRejected,
    parse_retry_after,
    redact,
)
from workers.models.retry import RetryPolicy


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.retries: list[tuple[str, float]] = []

    def attempt_done(self, outcome: str, latency_s: float) -> None:
        self.outcomes.append(outcome)

    def retrying(self, reason: str, delay_s: float) -> None:
        self.retries.append((reason, delay_s))


def scripted(*results: object):
    """A call that raises or returns each of ``results`` in turn."""
    queue = list(results)

    async def call() -> object:
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return call


def identity(exc: Exception) -> AttemptFailure | None:
    return exc if isinstance(exc, AttemptFailure) else None


async def run(policy: RetryPolicy, call, rec: Recorder, sleeps: list[float]) -> object:
    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    return await policy.run(
        call,
        provider="p",
        classify=identity,
        observer=rec,
        rng=random.Random(0),
        sleep=fake_sleep,
    )


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    now = datetime(2025, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now.timestamp()) == pytest.approx(30)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now.timestamp()) == 0.0


def test_full_jitter_bounds() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (10, 5.0)]:
        delays = [policy.backoff_s(retry, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # jitter spans the range


async def test_retry_after_sets_the_wait() -> None:
    rec, sleeps = Recorder(), []
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.01)
    failure = AttemptFailure("rate_limited", True, status=429, retry_after_s=3.0)
    assert await run(policy, scripted(failure, "ok"), rec, sleeps) == "ok"
    assert 3.0 <= sleeps[0] <= 3.01
    assert rec.outcomes == ["rate_limited", "ok"]
    assert rec.retries[0][0] == "rate_limited"


async def test_retry_after_longer_than_patience_gives_up_at_once() -> None:
    rec, sleeps = Recorder(), []
    policy = RetryPolicy(max_retry_after_s=10)
    failure = AttemptFailure("rate_limited", True, status=429, retry_after_s=3600)
    with pytest.raises(ModelGaveUp, match="asked to wait 3600 s"):
        await run(policy, scripted(failure), rec, sleeps)
    assert sleeps == []


async def test_non_retriable_is_raised_after_one_attempt() -> None:
    rec, sleeps = Recorder(), []
    failure = AttemptFailure("client_error", False, "HTTP 400: bad", status=400)
    with pytest.raises(ModelRejected, match="HTTP 400: bad"):
        await run(RetryPolicy(), scripted(failure, "never"), rec, sleeps)
    assert rec.outcomes == ["client_error"] and sleeps == []


async def test_gives_up_after_max_attempts() -> None:
    rec, sleeps = Recorder(), []
    f = AttemptFailure("server_error", True, "HTTP 500", status=500)
    with pytest.raises(ModelGaveUp, match="after 3 attempts; last failure: HTTP 500") as caught:
        await run(RetryPolicy(max_attempts=3), scripted(f, f, f, "never"), rec, sleeps)
    assert caught.value.attempts == 3 and len(sleeps) == 2


async def test_unclassified_errors_propagate_unchanged() -> None:
    rec, sleeps = Recorder(), []
    with pytest.raises(KeyError):
        await run(RetryPolicy(), scripted(KeyError("bug")), rec, sleeps)
    assert rec.outcomes == ["error"]


async def test_attempt_timeout_is_retried_and_cancellation_is_not() -> None:
    rec, sleeps = Recorder(), []
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        return "done"

    policy = RetryPolicy(attempt_timeout_s=0.05)
    assert await run(policy, slow, rec, sleeps) == "done"
    assert rec.outcomes == ["timeout", "ok"]

    rec2 = Recorder()

    async def hang() -> str:
        await asyncio.sleep(10)
        return "never"

    task = asyncio.create_task(run(RetryPolicy(attempt_timeout_s=5), hang, rec2, []))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec2.outcomes == ["cancelled"] and rec2.retries == []


def test_redact_hides_secrets_and_truncates() -> None:
    out = redact("key sk-123 here " + "x" * 500, ["sk-123"])
    assert "sk-123" not in out and "***" in out and len(out) <= 203


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
