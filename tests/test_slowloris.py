"""Unauthenticated clients cannot exhaust the sidecar's connections (issue 20, item 6):
real sockets against ``runaway-monitor serve`` that trickle header lines, or only
connect, are closed after RUNAWAY_HEADER_TIMEOUT_S, and past RUNAWAY_MAX_CONNECTIONS the
oldest idle one makes room, so /healthz keeps answering. Idle keep-alive is bounded by
the same timeout, counted from the last request: an idle connection is closed, one in
use is not. Loopback only, bounded in count and time."""

import socket
import time
import urllib.request

import pytest

from tests.serve_helpers import serve_process

TIMEOUT_S = 1.0
MARGIN_S = 2.0  # the guard's sweep (a quarter of the timeout), scheduling on a busy machine
KEEP_ALIVE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


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


def _answer(s: socket.socket) -> bytes:
    """Read one response from ``s`` (its head and Content-Length body); its head."""
    s.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, f"closed before the answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [h for h in head.lower().split(b"\r\n") if h.startswith(b"content-length:")]
    length = int(lengths[0].split(b":", 1)[1])
    while len(body) < length:
        chunk = s.recv(4096)
        assert chunk, "closed in the middle of the answer"
        body += chunk
    return head


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


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(sidecar):
    _, port = sidecar
    s = _open(port, KEEP_ALIVE)
    head = _answer(s)
    answered = time.monotonic()
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower(), head
    assert not _closed(s)  # kept alive for the next request
    deadline = answered + TIMEOUT_S + MARGIN_S
    while not _closed(s):
        assert time.monotonic() < deadline, f"idle keep-alive open {TIMEOUT_S + MARGIN_S} s on"
        time.sleep(0.05)
    idle = time.monotonic() - answered
    assert idle >= TIMEOUT_S / 2, f"closed {idle:.2f} s after the answer: keep-alive ignored"
    s.close()


def test_a_keep_alive_connection_in_use_is_not_closed(sidecar):
    """Requests every half timeout for three timeouts, on one connection: the idle clock
    restarts at each request (it used to run from the connection's start)."""
    _, port = sidecar
    s = _open(port, b"")
    started = time.monotonic()
    answers = 0
    while time.monotonic() - started < 3 * TIMEOUT_S:
        s.sendall(KEEP_ALIVE)
        assert _answer(s).startswith(b"HTTP/1.1 200"), f"answer {answers + 1}"
        answers += 1
        time.sleep(TIMEOUT_S / 2)  # the client's think time: idle, but within the timeout
    assert answers >= 6
    s.close()
