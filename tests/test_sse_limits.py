"""The live feed cannot be monopolised (issue 20, item 8): streams are limited per
client address, and a stream whose client went away frees its slot within a second or
two instead of at the next 15 s keep-alive."""

import asyncio

import aiohttp

from tests.api_helpers import api_client


def _open_streams(text: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith("runaway_sse_clients "))
    return float(line.split()[-1])


async def _stream(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    resp = await session.get(url + "/v1/events")
    if resp.status == 200:
        assert (await resp.content.readline()).startswith(b"retry:")
    return resp


async def test_one_client_cannot_take_every_stream(settings, redis):
    async with api_client(settings, detector=False, sse_per_client=3, sse_max_streams=10) as client:
        url = str(client.make_url("")).rstrip("/")
        hog = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        other = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)),
            headers={"Host": "127.0.0.1"},
        )
        try:
            held = [await _stream(hog, url) for _ in range(20)]
            assert [r.status for r in held].count(200) == 3
            refused = next(r for r in held if r.status != 200)
            assert refused.status == 429 and (await refused.json())["field"] == "client"
            mine = await _stream(other, url)  # another viewer still gets a stream
            assert mine.status == 200
            mine.close()
            for r in held:
                r.close()
        finally:
            await hog.close()
            await other.close()


async def test_an_aborted_stream_frees_its_slot_within_two_seconds(settings, redis):
    async with api_client(settings, detector=False, sse_per_client=2) as client:
        url = str(client.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            streams = [await _stream(session, url) for _ in range(2)]
            assert (await _stream(session, url)).status == 429
            for r in streams:
                r.close()  # the client goes away without a word
            loop = asyncio.get_running_loop()
            started = loop.time()
            while _open_streams(await (await client.get("/metrics")).text()) > 0:
                assert loop.time() - started < 2.5, "the slots are still held"
                await asyncio.sleep(0.05)
            again = await _stream(session, url)
            assert again.status == 200
            again.close()
