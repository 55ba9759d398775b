"""``GET /v1/events``: Server-Sent Events of steps, verdicts, flips and recoveries.

``?episode_id=`` narrows the stream to one episode, ``?kinds=step,flip`` to some kinds.
Step events never carry the agent's text, and recovery events not the reminder: the feed
is for watching, prompts stay out of it. A comment line every 15 s keeps proxies from
closing an idle stream; a client too slow to keep up is dropped and reconnects. A
client that went away is noticed within a second (its slot freed), and each client
address has at most ``RUNAWAY_SSE_PER_CLIENT`` streams (429 beyond), the service
``RUNAWAY_SSE_MAX_STREAMS`` (503 beyond).
"""

import asyncio
import contextlib

from aiohttp import web

from monitor.api.errors import ApiError
from monitor.api.hub import TooMany
from monitor.api.state import HUB, METRICS

KINDS = frozenset(
    {
        "episode_started",
        "step",
        "verdict",
        "flip",
        "recovery_command",
        "recovery_applied",
        "episode_finished",
    }
)
KEEPALIVE_S = 15.0
CHECK_S = 1.0  # how often an idle stream checks that its client is still there


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/events", events)


async def events(request: web.Request) -> web.StreamResponse:
    episode_id = request.query.get("episode_id") or None
    kinds = None
    if "kinds" in request.query:
        kinds = frozenset(k for k in request.query["kinds"].split(",") if k)
        if not kinds <= KINDS:
            raise ApiError(422, "validation_error", f"kinds must be among {sorted(KINDS)}", "kinds")
    hub, metrics = request.app[HUB], request.app[METRICS]
    try:
        sub = hub.subscribe(episode_id, kinds, request.remote or "")
    except TooMany as exc:
        if exc.per_client:
            raise ApiError(
                429, "too_many_streams", "too many open event streams from this client", "client"
            ) from None
        raise ApiError(503, "too_many_streams", "too many open event streams") from None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    metrics.sse_clients.inc()
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n: connected\n\n")
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while True:
            try:
                async with asyncio.timeout(CHECK_S):  # not wait_for: it can eat a cancel
                    kind, event_id, data = await sub.queue.get()
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away: free the slot now, not at a failed write
                if loop.time() - last_write >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    last_write = loop.time()
                continue
            if kind == "close":
                break
            await response.write(
                b"event: %s\nid: %s\ndata: %s\n\n" % (kind.encode(), event_id.encode(), data)
            )
            last_write = loop.time()
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the client went away, or the service is stopping
    finally:
        hub.unsubscribe(sub)
        metrics.sse_clients.dec()
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
