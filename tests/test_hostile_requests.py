"""Requests that must not lose their answer (issue 20, item 5): a duplicate step sent at
the same time as the real one is refused and never touches the real one's wait."""

import asyncio

from tests.api_helpers import api_client, mo_step, register


async def test_a_concurrent_duplicate_never_cancels_the_real_verdict(settings, redis):
    async with api_client(settings, step_timeout_s=3) as client:
        for _ in range(10):
            ep = await register(client)
            url = f"/v1/episodes/{ep}/steps"
            pair = await asyncio.gather(
                client.post(url, json=mo_step(1)), client.post(url, json=mo_step(1))
            )
            assert sorted(r.status for r in pair) == [200, 409]
            accepted = next(r for r in pair if r.status == 200)
            got = await accepted.json()
            assert got["fail_mode"] is None, got  # the detector's verdict, not the timeout's
            assert got["latency_ms"] < 2000
