"""The shared jittered backoff (schemas/backoff.py): bounds, jitter, cap, attempts."""

import asyncio
import random

import pytest

from schemas.backoff import Backoff, backoff_delay


def test_delays_stay_within_the_jittered_exponential_ceiling():
    rng = random.Random(7)
    for retry in range(12):
        ceiling = min(2.0, 0.05 * 2**retry)
        delays = [backoff_delay(retry, 0.05, 2.0, rng, jitter=0.5) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), retry
        assert max(delays) > 0.9 * ceiling and min(delays) < 0.6 * ceiling  # spread


def test_full_jitter_spreads_from_zero_and_no_jitter_is_exact():
    rng = random.Random(1)
    full = [backoff_delay(3, 0.5, 30.0, rng, jitter=1.0) for _ in range(500)]
    assert 0 <= min(full) < 0.4 and 3.6 < max(full) <= 4.0
    assert backoff_delay(3, 0.5, 30.0, rng, jitter=0.0) == 4.0


def test_cap_holds_for_huge_retry_counts():
    assert backoff_delay(10_000, 0.05, 2.0, random.Random(0), jitter=0.0) == 2.0


def test_two_loops_do_not_retry_in_lock_step():
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


def test_reset_starts_again_from_the_base():
    backoff = Backoff(base_s=0.1, max_s=10.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    backoff.reset()
    assert backoff.next_delay() == 0.1


async def test_attempts_are_bounded():
    backoff = Backoff(base_s=0.001, max_s=0.001, max_attempts=3)
    assert [await backoff.wait() for _ in range(5)] == [True, True, True, False, False]
    assert backoff.exhausted


async def test_a_stop_event_cuts_the_wait_short():
    stop = asyncio.Event()
    stop.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await Backoff(base_s=30.0, max_s=30.0, jitter=0.0).wait(stop)
    assert loop.time() - started < 1.0


@pytest.mark.parametrize(
    "kwargs", [{"base_s": -1}, {"base_s": 2.0, "max_s": 1.0}, {"jitter": 1.5}, {"max_attempts": -1}]
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
