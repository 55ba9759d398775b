"""Connection limits of the sidecar's listener, which aiohttp's server does not have.

Why: aiohttp waits for a request head forever while bytes keep coming, so clients that
trickle one header line every few seconds (slowloris) held thousands of connections
until the process ran out of file descriptors and answered nothing, not even
``/healthz``. The token check cannot help: it runs after the head. So every connection
is wrapped (:class:`_Guarded`, a transparent asyncio protocol around aiohttp's own):

- one that is not handling a request, and has not sent a complete request head within
  ``RUNAWAY_HEADER_TIMEOUT_S`` of connecting or of its last request, is closed: this
  bounds half-open heads and idle keep-alive alike;
- at most ``RUNAWAY_MAX_CONNECTIONS`` are open: a new one beyond that closes the oldest
  idle one (an unfinished head first of all), or is refused if every one is busy.

A request body is bounded in time by the handlers (``read_body``).
"""

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, plus when it was last busy."""

    __slots__ = ("guard", "handler", "idle_since", "made", "transport")

    def __init__(self, guard: "ConnectionGuard", handler: RequestHandler) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.made = False

    @property
    def busy(self) -> bool:
        """A request is being handled, or a complete head waits to be."""
        h = self.handler
        return bool(h._request_in_progress or h._messages)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.idle_since = asyncio.get_running_loop().time()
        if self.guard.admit(self):
            self.made = True
            self.handler.connection_made(transport)
        else:
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        h = self.handler
        # aiohttp's count of request heads parsed on this connection (private: read with a
        # default, so another aiohttp release keeps the old behaviour instead of failing)
        heads = getattr(h, "_request_count", None)
        h.data_received(data)
        if heads is not None and getattr(h, "_request_count", heads) != heads:
            # a complete request head: the idle clock restarts (the sweep sees a quick
            # request busy only by chance, so without this a keep-alive connection in use
            # was closed one timeout after it connected)
            self.idle_since = asyncio.get_running_loop().time()

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.connections.pop(self, None)
        if self.made:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    def __init__(self, header_timeout_s: float, max_connections: int) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.connections: dict[_Guarded, None] = {}  # oldest first
        self.closed = 0  # connections closed for being too slow or too many
        self._sweeper: asyncio.Task[None] | None = None

    def protocol(self, handler: RequestHandler) -> _Guarded:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="connection-guard")
        return _Guarded(self, handler)

    def admit(self, conn: _Guarded) -> bool:
        """Room for ``conn``: the oldest idle connection is closed when full."""
        if len(self.connections) >= self.max_connections:
            idle = next((c for c in self.connections if not c.busy), None)
            if idle is None:
                log.warning("connection refused: %d busy connections", len(self.connections))
                return False
            self.connections.pop(idle, None)
            self.closed += 1
            idle.close()
        self.connections[conn] = None
        return True

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, self.header_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for conn in list(self.connections):
                if conn.busy:
                    conn.idle_since = now
                elif now - conn.idle_since > self.header_timeout_s:
                    self.connections.pop(conn, None)
                    self.closed += 1
                    conn.close()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections go through a :class:`ConnectionGuard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, **kwargs: Any
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            lambda: self.guard.protocol(server()),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = (
            self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
        )

    async def stop(self) -> None:
        await super().stop()
        await self.guard.aclose()
