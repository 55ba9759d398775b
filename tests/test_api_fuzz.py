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


# Hostile values (issue 20): non-finite strings, extreme magnitudes, booleans, nesting.
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "inf", "1e999", True, False, None, "1"]),
    st.sampled_from([1e308, -1e308, 1e12, -1e12, 1e12 + 1, 5e-324, 0, -0.0, 2**63, -(2**64)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**15), 10**15),
)
FAIR_NUMBERS = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(0, 500)


def _nest(depth: int) -> dict:
    value: dict = {"x": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


NESTED = st.integers(0, 300).map(_nest) | st.dictionaries(st.text(max_size=5), HOSTILE_NUMBERS)


def _objective(value):
    return st.fixed_dictionaries(
        {"name": st.just("A"), "kind": st.just("homeostatic"), "target": value, "band": value}
    )


REGISTRATIONS = st.one_of(
    st.just({"environment": "multiobjective-homeostasis"}),
    st.builds(lambda o: {"environment": "multiobjective-homeostasis", "env_options": o}, NESTED),
    st.builds(lambda o: {"objectives": [o]}, _objective(HOSTILE_NUMBERS)),
    st.builds(lambda o: {"objectives": [o]}, _objective(FAIR_NUMBERS)),
)


def _call(method: str, url: str, body: object | None = None) -> tuple[int, object]:
    """(status, parsed JSON body); the body must be JSON whatever the status."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    assert "NaN" not in text and "Infinity" not in text, text[:300]
    return status, json.loads(text)  # raises on a non-JSON body


@pytest.fixture
def patient_sidecar(tmp_path):
    env = {"RUNAWAY_SHARDS": "2", "RUNAWAY_STEP_TIMEOUT_S": "10"}
    with serve_process(tmp_path, **env) as (url, _, log):
        yield url, log


@pytest.mark.timeout(150)
def test_hostile_values_and_concurrent_duplicates(patient_sidecar):
    """Never a 5xx, never a non-JSON body (nor NaN in one), every accepted step answered
    by the detector (not the fail mode), and the detector alive at the end."""
    from concurrent.futures import ThreadPoolExecutor

    url, log = patient_sidecar
    pool = ThreadPoolExecutor(8)
    observed = st.dictionaries(
        st.sampled_from(["A", "B"]), HOSTILE_NUMBERS | FAIR_NUMBERS, min_size=2
    )

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        reg=REGISTRATIONS,
        steps=st.lists(st.tuples(observed, observed), min_size=1, max_size=4),
        copies=st.integers(1, 3),
    )
    def fuzz(reg, steps, copies):
        status, body = _call("POST", f"{url}/v1/episodes", reg)
        assert status in (201, 422), (status, body)
        if status != 201:
            return
        episode = body["episode_id"]
        names = body["objectives"]
        url_step = f"{url}/v1/episodes/{episode}/steps"
        accepted = 0
        for obs, act in steps:
            step = {
                "step": accepted + 1,
                "observation": {n: obs.get(n, 1) for n in names},
                "action": {n: act.get(n, 1) for n in names},
            }
            answers = list(pool.map(lambda b: _call("POST", url_step, b), [step] * copies))
            statuses = sorted(s for s, _ in answers)
            assert all(s < 500 for s in statuses), answers
            if statuses[0] == 422:
                assert set(statuses) == {422}
                continue
            assert statuses == [200] + [409] * (copies - 1), answers
            accepted += 1
            ok = next(b for s, b in answers if s == 200)
            assert ok["fail_mode"] is None, ok  # the detector answered
            assert 0 <= ok["runaway_index"] <= 1
        for path in (f"/v1/episodes/{episode}", "/v1/episodes"):
            assert _call("GET", url + path)[0] == 200

    try:
        fuzz()
    finally:
        pool.shutdown()
    assert _call("GET", f"{url}/healthz") == (200, {"status": "ok"})
    status, ready = _call("GET", f"{url}/readyz")
    assert status == 200 and ready["detectors"] >= 1, ready
    assert "Traceback" not in log.read_text()
