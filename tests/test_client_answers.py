"""The bundled client on every answer it may get (issue 20, item 14): it follows the
API's StepVerdict exactly and raises only MonitorError, also on a fail-mode answer whose
runaway_index is null, on bodies that are not JSON, and when nothing answers."""

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from monitor.client import AsyncMonitor, Monitor, MonitorError, StepResult
from tests.serve_helpers import free_port

FAIL_MODE = {
    "episode_id": "e",
    "step": 3,
    "verdict": "reset",
    "savepoint_step": 0,
    "runaway_index": None,
    "flags": [],
    "hazard": 0.0,
    "detections": [],
    "reminder": None,
    "reason": "no verdict from the detectors in time",
    "command_id": None,
    "fail_mode": "closed",
    "latency_ms": 2001.0,
}
GOOD = {**FAIL_MODE, "runaway_index": 0.25, "verdict": "continue", "fail_mode": None}


class _Canned(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, bytes, str] = (200, b"{}", "application/json")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body, ctype = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


ANSWERS = [
    (200, json.dumps(FAIL_MODE).encode(), "application/json", "runaway_index"),
    (200, json.dumps({**GOOD, "step": "3"}).encode(), "application/json", "step"),
    (200, json.dumps({**GOOD, "flags": [1]}).encode(), "application/json", "flags"),
    (
        200,
        json.dumps({k: v for k, v in GOOD.items() if k != "verdict"}).encode(),
        "application/json",
        "verdict",
    ),
    (200, b"<html>proxy</html>", "text/html", "body"),
    (200, b"[1, 2]", "application/json", "body"),
    (200, b'{"runaway_index": NaN', "application/json", "body"),
    (502, b"<html>bad gateway</html>", "text/html", None),
    (500, b"[]", "application/json", None),
]


@pytest.mark.parametrize(("status", "body", "ctype", "field"), ANSWERS)
def test_sync_client_raises_only_monitor_error(canned, status, body, ctype, field):
    canned.answer = (status, body, ctype)  # type: ignore[attr-defined]
    mon = Monitor(f"http://127.0.0.1:{canned.server_port}", timeout_s=5)
    with pytest.raises(MonitorError) as err:
        mon.step("e", 3, {"A": 1}, {"A": 1})
    assert err.value.status == status and err.value.field == field


@pytest.mark.parametrize(("status", "body", "ctype", "field"), ANSWERS)
async def test_async_client_raises_only_monitor_error(canned, status, body, ctype, field):
    canned.answer = (status, body, ctype)  # type: ignore[attr-defined]
    async with AsyncMonitor(f"http://127.0.0.1:{canned.server_port}", timeout_s=5) as mon:
        with pytest.raises(MonitorError) as err:
            await mon.step("e", 3, {"A": 1}, {"A": 1})
    assert err.value.status == status and err.value.field == field


def test_no_answer_is_a_monitor_error():
    mon = Monitor(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(MonitorError) as err:
        mon.register(environment="homeostasis")
    assert err.value.status == 0 and err.value.code == "unreachable"

    async def run() -> None:
        async with AsyncMonitor(mon.url, timeout_s=2) as amon:
            await amon.finish("e")

    with pytest.raises(MonitorError):
        asyncio.run(run())


def test_a_good_answer_keeps_every_field(canned):
    canned.answer = (200, json.dumps(GOOD).encode(), "application/json")  # type: ignore[attr-defined]
    got = Monitor(f"http://127.0.0.1:{canned.server_port}").step("e", 3, {"A": 1}, {"A": 1})
    assert got == StepResult(**{**GOOD, "raw": GOOD}) and not got.reset
    assert got.reason == GOOD["reason"] and got.latency_ms == 2001.0
