"""A real 3-master Redis Cluster on loopback ports, from the same redis-server binary."""

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from monitor.embedded_redis import find_redis_server


def find_redis_cli() -> str | None:
    server = Path(find_redis_server())
    for candidate in (server.with_name("redis-cli"), shutil.which("redis-cli")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def _free_ports(n: int) -> list[int]:
    """n free ports whose cluster bus ports (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@contextlib.asynccontextmanager
async def redis_cluster(masters: int = 3) -> AsyncIterator[str]:
    """Start ``masters`` cluster-enabled servers, join them; yield a redis+cluster:// URL."""
    cli = find_redis_cli()
    if cli is None:
        raise RuntimeError("redis-cli not found")
    server = find_redis_server()
    tmp = tempfile.TemporaryDirectory(prefix="runaway-cluster-")
    procs = []
    ports = _free_ports(masters)
    try:
        for port in ports:
            d = Path(tmp.name) / str(port)
            d.mkdir()
            proc = await asyncio.create_subprocess_exec(
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(d),
                "--loglevel",
                "warning",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            procs.append(proc)
        for port in ports:
            for _ in range(100):
                ping = await asyncio.create_subprocess_exec(
                    cli,
                    "-p",
                    str(port),
                    "ping",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                out, _ = await ping.communicate()
                if b"PONG" in out:
                    break
                await asyncio.sleep(0.05)
        create = await asyncio.create_subprocess_exec(
            cli,
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(create.communicate(), 30)
        if create.returncode != 0:
            raise RuntimeError(out.decode()[-1000:])
        for _ in range(200):  # wait until every node agrees the cluster is ok
            states = []
            for port in ports:
                info = await asyncio.create_subprocess_exec(
                    cli, "-p", str(port), "cluster", "info", stdout=asyncio.subprocess.PIPE
                )
                out, _ = await info.communicate()
                states.append(b"cluster_state:ok" in out)
            if all(states):
                break
            await asyncio.sleep(0.05)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:
            await p.wait()
        tmp.cleanup()
