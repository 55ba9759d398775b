"""The sidecar's HTTP API fuzzed with schemathesis from its own ``/openapi.json``.

``runaway-monitor serve`` runs as users run it (its own process, embedded Redis,
in-process detector). For every operation in the schema, schemathesis generates requests
that fit the schema and requests that break it (wrong types, missing fields, odd
strings); each must get an answer within the timeout (no hang) and never a 5xx. A few
episodes are registered first so the path parameters also hit existing episodes. The
examples per operation are bounded so the test stays well under a minute.
"""

import time

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from monitor.client import Monitor  # noqa: E402
from tests.serve_helpers import serve_process  # noqa: E402

EXAMPLES_PER_OPERATION = 40
REQUEST_TIMEOUT_S = 10.0
SKIP = {"/v1/events", "/v1/episodes/{episode_id}/events"}  # endless SSE streams


@pytest.fixture
def sidecar(tmp_path):
    with serve_process(tmp_path, RUNAWAY_SHARDS="2", RUNAWAY_STEP_TIMEOUT_S="1") as (url, _, log):
        yield url, log


@pytest.mark.timeout(90)
def test_fuzzed_api_never_5xx_nor_hangs(sidecar):
    url, log = sidecar
    mon = Monitor(url, timeout_s=10)
    known = [mon.register(environment="multiobjective-homeostasis") for _ in range(3)]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 5, "the schema lists the API's operations"
    failures: list[str] = []
    tried = 0
    started = time.monotonic()
    for op in operations:
        if op.path in SKIP:
            continue
        label = f"{op.method.upper()} {op.path}"
        strategy = st.one_of(
            op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, pick=st.sampled_from([*known, None]))
        def fuzz(case, pick):
            nonlocal tried
            if pick is not None and "episode_id" in (case.path_parameters or {}):
                case.path_parameters["episode_id"] = pick
            tried += 1
            t0 = time.monotonic()
            try:
                response = case.call(base_url=url, timeout=REQUEST_TIMEOUT_S)
            except Exception as exc:  # a timeout is a hang
                failures.append(f"{label}: {type(exc).__name__}: {exc}")  # noqa: B023
                return
            if response.status_code >= 500:
                failures.append(
                    f"{label} {case.formatted_path} -> {response.status_code} "  # noqa: B023
                    f"{response.text[:200]} (body {case.body!r:.200})"
                )
            assert time.monotonic() - t0 < REQUEST_TIMEOUT_S

        fuzz()
    print(f"fuzzed {tried} requests")
    assert tried >= 5 * EXAMPLES_PER_OPERATION // 2
    assert not failures, "\n".join(failures[:20]) + "\n" + log.read_text()[-3000:]
    assert time.monotonic() - started < 60
    # the service still works after the fuzzing (the known episodes may be finished now)
    fresh = mon.register(environment="multiobjective-homeostasis")
    assert mon.step(fresh, 1, {"A": 110, "B": 120}, {"A": 1, "B": 1}).verdict in (
        "continue",
        "reset",
    )
