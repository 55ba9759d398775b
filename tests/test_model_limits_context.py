"""Concurrency and rate limits; the context policy; JSON answers to text; pricing."""

import asyncio

import pytest

from schemas.settings import Settings
from tests.fakes.stub_env import history
from workers.models.context import count_message_tokens, estimate_tokens, fit_context
from workers.models.limits import ModelLimits, TokenBucket
from workers.models.pricing import price_for
from workers.models.structured import json_answer_to_text


async def test_concurrency_is_bounded_per_key() -> None:
    limits = ModelLimits(concurrency=2)
    peak = {"a": 0, "b": 0}

    async def work(key: str) -> None:
        async with limits.slot("openai", key):
            peak[key] = max(peak[key], limits.in_flight("openai", key))
            await asyncio.sleep(0.02)

    await asyncio.gather(*(work("a") for _ in range(6)), *(work("b") for _ in range(6)))
    assert peak == {"a": 2, "b": 2}  # each endpoint has its own budget
    assert limits.in_flight("openai", "a") == 0


async def test_token_bucket_spaces_requests() -> None:
    now = [0.0]
    waited: list[float] = []

    async def fake_sleep(s: float) -> None:
        waited.append(s)
        now[0] += s

    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(5):
        await bucket.acquire()
    assert now[0] == pytest.approx(0.3)  # 2 from the burst, then 3 at 10/s


async def test_rate_limit_shared_by_agents_of_one_endpoint() -> None:
    limits = ModelLimits(concurrency=100, rate_limit_rps=50)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def hit() -> None:
        async with limits.slot("openai-compatible", "http://x"):
            pass

    await asyncio.gather(*(hit() for _ in range(60)))
    assert loop.time() - started >= 0.15  # 50 burst, then 10 more at 50/s


def test_fit_keeps_system_and_latest_and_drops_oldest_pairs() -> None:
    msgs = history(10, obs_chars=96)  # each pair ~ 25 + 2 + 8 tokens
    full = count_message_tokens(msgs, estimate_tokens)
    fitted = fit_context(msgs, full, counter=estimate_tokens)
    assert fitted.messages == msgs and fitted.dropped_pairs == 0

    fitted = fit_context(msgs, full - 1, counter=estimate_tokens)
    assert fitted.dropped_pairs == 1
    assert fitted.messages == [msgs[0], *msgs[3:]]

    fitted = fit_context(msgs, 200, reserve_tokens=50, counter=estimate_tokens)
    assert fitted.messages[0] == msgs[0] and fitted.messages[-1] == msgs[-1]
    assert fitted.tokens <= 150 and not fitted.over_budget
    assert [m["role"] for m in fitted.messages[1:-1]] == ["user", "assistant"] * (
        (len(fitted.messages) - 2) // 2
    )


def test_fit_over_budget_still_sends_system_and_latest() -> None:
    msgs = history(3, obs_chars=4000)
    fitted = fit_context(msgs, 300, counter=estimate_tokens)
    assert fitted.messages == [msgs[0], msgs[-1]] and fitted.over_budget


def test_fit_drops_inserted_reminders_with_their_observation() -> None:
    msgs = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "obs1 " * 50},
        {"role": "user", "content": "reminder"},
        {"role": "assistant", "content": "1, 1"},
        {"role": "user", "content": "obs2"},
        {"role": "assistant", "content": "2, 2"},
        {"role": "user", "content": "obs3"},
    ]
    fitted = fit_context(msgs, 40, counter=estimate_tokens)  # type: ignore[arg-type]
    assert fitted.messages == [msgs[0], msgs[2], msgs[3], msgs[4], msgs[5], msgs[6]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"A": 5, "B": 3}', "5, 3"),
        ('{"B": 3, "A": 5}', "5, 3"),
        ('```json\n{"A": 5, "B": 3}\n```', "5, 3"),
        ('{"A": 5.0, "B": "3"}', "5, 3"),
        ('{"A": 5}', None),
        ('{"A": true, "B": 1}', None),
        ('{"A": 1.5, "B": 1}', None),
        ("[5, 3]", None),
        ("5, 3", None),
    ],
)
def test_json_answer_to_text(raw: str, expected: str | None) -> None:
    assert json_answer_to_text(raw, ["A", "B"]) == expected


def test_json_answer_uses_the_environment_formatter() -> None:
    assert json_answer_to_text('{"A": 1, "B": 2}', ["A", "B"], lambda a: f"{a['A']}|{a['B']}") == (
        "1|2"
    )


def test_prices_by_longest_prefix() -> None:
    assert price_for("gpt-4o-mini-2024-07-18").input_per_mtok == 0.15
    assert price_for("gpt-4o-2024-08-06").input_per_mtok == 2.50
    unknown = price_for("llama3")
    assert not unknown.known and unknown.cost_usd(1000, 1000) == 0.0


def test_model_concurrency_defaults_to_the_workers_concurrency() -> None:
    """Each episode waits on one call at a time: the worker's concurrency bounds the calls."""
    assert ModelLimits.from_settings(Settings()).concurrency == Settings().concurrency
    assert ModelLimits.from_settings(Settings(concurrency=50)).concurrency == 50
    assert ModelLimits.from_settings(Settings(model_concurrency=8)).concurrency == 8
    limits = ModelLimits.from_settings(Settings(model_rate_limit_rps=5.0))
    assert limits.rate_limit_rps == 5.0
