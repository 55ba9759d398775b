"""Unauthenticated clients cannot exhaust the sidecar's connections (issue 20, item 6):
real sockets against ``runaway-monitor serve`` that trickle header lines, or only
connect, are closed after RUNAWAY_HEADER_TIMEOUT_S, and past RUNAWAY_MAX_CONNECTIONS the
oldest idle one makes room, so /healthz keeps answering. Loopback only, bounded in count
and time."""

import socket
import time
import urllib.request

import pytest

from tests.serve_helpers import serve_process

TIMEOUT_S = 1.0


@pytest.fixture
def sidecar(tmp_path):
    env = {
        "RUNAWAY_SHARDS": "1",
        "RUNAWAY_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "RUNAWAY_MAX_CONNECTIONS": "64",
    }
    with serve_process(tmp_path, **env) as (url, _, _):
        yield url, int(url.rsplit(":", 1)[1])


def _open(
    port: int, head: bytes = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if head:
        s.sendall(head)
    return s


def _closed(s: socket.socket) -> bool:
    """True once the server has closed it (EOF or reset)."""
    s.setblocking(False)
    try:
        return s.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _healthz(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=3) as resp:
        return resp.status


def test_trickled_headers_are_closed_after_the_timeout(sidecar):
    url, port = sidecar
    socks = [_open(port) for _ in range(20)]
    started = time.monotonic()
    while time.monotonic() - started < 4 * TIMEOUT_S + 2:
        for s in socks:  # one more header line each, well within any per-line timeout
            if not _closed(s):
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
        assert _healthz(url) == 200
        if all(_closed(s) for s in socks):
            break
        time.sleep(0.2)
    took = time.monotonic() - started
    assert all(_closed(s) for s in socks), f"still open after {took:.1f} s"
    assert took < 4 * TIMEOUT_S + 2
    for s in socks:
        s.close()


def test_more_idle_connections_than_allowed_leave_room_for_real_requests(sidecar):
    url, port = sidecar
    socks = [_open(port, b"") for _ in range(200)] + [_open(port) for _ in range(100)]
    for _ in range(5):  # new requests keep getting through while the flood is held
        assert _healthz(url) == 200
    deadline = time.monotonic() + 3
    while (open_now := sum(not _closed(s) for s in socks)) > 64:
        assert time.monotonic() < deadline, f"{open_now} connections held"
        time.sleep(0.05)
    for s in socks:
        s.close()


def test_a_trickled_body_is_answered_408(sidecar):
    _, port = sidecar
    s = _open(
        port,
        b"POST /v1/episodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    started = time.monotonic()
    s.settimeout(4 * TIMEOUT_S + 2)
    answer = s.recv(1024)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 4 * TIMEOUT_S + 2
    s.close()
