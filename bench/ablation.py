"""Where a step's CPU goes in the pipeline: each cost switched off in turn, side by side.

Each run plays the demo mix (as ``bench/pipeline.py``) with the worker and the detector in
one process, so one process's CPU counts both, and Redis's CPU comes from ``INFO cpu``
(a private server's; with ``REDIS_URL``, all that the shared server did meanwhile).
An ablation removes one cost outright (it is a measuring tool: without it the product
would be wrong, e.g. unvalidated input) and the table shows how much CPU per step that
saves against the baseline, taking the minimum over ``--repeats`` runs of each, run in
alternation, each in a fresh process. ``baseline_spread_pct`` is the baseline's own
run-to-run spread: a saving smaller than that is not a finding. ``plain_writes`` and
``model_encoders`` replace a kept piece of hot-path machinery (the Lua batch writer, the
hand-written step and verdict encoders) by the plain library call, to show what it saves
(docs/sizing.md, "Hot-path machinery").

    python bench/ablation.py [--episodes 200] [--steps 100] [--repeats 3] [--only a,b] [--json]
"""

import argparse
import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

if not __package__:  # run as a script (python bench/x.py): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson

from bench.common import ROOT, bench_redis, print_table, run
from bench.pipeline import pipeline_run
from schemas.redis_io import connect
from schemas.settings import Settings


def _replace(owner: Any, name: str, new: Any) -> None:
    """``owner.name = new``, refusing a name that is not there: after a rename, an
    ablation must fail loudly instead of measuring nothing."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no {name!r} to switch off")
    setattr(owner, name, new)


def _no_metrics() -> None:
    """Prometheus updates (counters, gauges, histograms) do nothing."""
    import prometheus_client.metrics as m

    for owner, name in ((m.Counter, "inc"), (m.Gauge, "set"), (m.Histogram, "observe")):
        _replace(owner, name, lambda self, *a, **k: None)


def _wrap_writes(drop: Callable[[Any], None]) -> None:
    import detectors.consumer as consumer

    writes = consumer.ShardConsumer._writes

    def patched(self: Any, batch: Any) -> Any:
        drop(batch)
        return writes(self, batch)

    _replace(consumer.ShardConsumer, "_writes", patched)


def _no_episode_summary() -> None:
    """The detector writes no per-episode summary hash (``GET /v1/episodes``)."""

    def drop(batch: Any) -> None:
        batch.summaries.clear()
        batch.expire.clear()

    _wrap_writes(drop)


def _no_checkpoint() -> None:
    """The detector neither serialises nor writes the scorer state after a batch."""
    import detectors.records as records
    from detectors.records import spec_field

    _replace(records.EpisodeRecord, "dump_state", lambda self: b"")

    def drop(batch: Any) -> None:
        batch.states = {k: v for k, v in batch.states.items() if k.endswith(spec_field(""))}

    _wrap_writes(drop)


def _no_control_copy() -> None:
    """Verdicts go to the shard's verdicts stream only, not also to ``control:<ep>``."""
    import detectors.consumer as consumer
    from schemas.wire import routed

    def control(self: Any, batch: Any, key: str, episode_id: str, fields: dict) -> None:
        batch.xadds.append((self.verdicts, routed(fields, episode_id), self.verdicts_maxlen))

    _replace(consumer.ShardConsumer, "_control", control)


def _unvalidated(module: Any, kind: bytes, model: Any) -> None:
    decode = module.decode

    def patched(fields: Any) -> Any:
        if fields.get(b"k") == kind:
            return model.model_construct(**orjson.loads(fields[b"d"]))
        return decode(fields)

    _replace(module, "decode", patched)


def _no_step_validation() -> None:
    """The detector builds each step without pydantic's validation."""
    import detectors.consumer as consumer
    from schemas.events import StepEvent

    _unvalidated(consumer, b"step", StepEvent)


def _no_verdict_validation() -> None:
    """The worker builds each verdict without pydantic's validation."""
    import workers.worker as worker
    from schemas.events import Verdict

    _unvalidated(worker, b"verdict", Verdict)


def _no_publish_wait() -> None:
    """An episode does not wait for its step's XADD (only for the step's verdict)."""
    from workers.publisher import StreamPublisher

    publish = StreamPublisher.publish_raw

    async def patched(self: Any, stream: str, fields: dict[str, bytes], maxlen: int) -> None:
        if fields["k"] != b"step":
            return await publish(self, stream, fields, maxlen)
        self._submit((stream, fields, maxlen))  # queued for the next batch, not awaited

    _replace(StreamPublisher, "publish_raw", patched)


def _no_page_trace() -> None:
    """The detector writes neither the per-episode step trace nor the running totals
    (the live page's drill-down and header)."""
    import detectors.consumer as consumer

    _replace(consumer, "encode_trace", lambda *a, **k: None)

    def drop(batch: Any) -> None:
        batch.xadds = [x for x in batch.xadds if x[1] is not None]
        batch.counts.clear()

    _wrap_writes(drop)


# -- the hot-path machinery, each replaced by the plain library call it stands in for ------


async def _pipeline_send(self: Any, batch: Any) -> None:
    """A :class:`WriteBatch` as a redis-py MULTI/EXEC pipeline of plain commands."""
    if not batch:
        return
    keys, args = batch.keys, batch.args
    pipe = self._redis.pipeline(transaction=True)
    i = 0
    while i < len(args):
        op, key = args[i], keys[args[i + 1] - 1]
        if op == "X":
            maxlen, count = args[i + 2], args[i + 3]
            flat = args[i + 4 : i + 4 + 2 * count]
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
            i += 4 + 2 * count
        elif op in ("H", "D"):
            count = args[i + 2] * (2 if op == "H" else 1)
            flat = args[i + 3 : i + 3 + count]
            if op == "H":
                pipe.hset(key, mapping=dict(zip(flat[::2], flat[1::2], strict=True)))
            else:
                pipe.hdel(key, *flat)
            i += 3 + count
        elif op == "E":
            pipe.expire(key, args[i + 2])
            i += 3
        elif op == "I":
            count = args[i + 2]
            flat = args[i + 3 : i + 3 + 2 * count]
            for name, by in zip(flat[::2], flat[1::2], strict=True):
                pipe.hincrby(key, name, by)
            i += 3 + 2 * count
        elif op != "A":  # an op added to the batch writer must be added here too
            raise ValueError(f"plain_writes: unknown batch op {op!r}")
        else:
            count = args[i + 3]
            pipe.xack(key, args[i + 2], *args[i + 4 : i + 4 + count])
            i += 4 + count
    await pipe.execute()


def _plain_writes() -> None:
    """Every batch of writes (the detector's and the worker's publisher's) goes as a
    redis-py MULTI/EXEC pipeline instead of one msgpack argument to a Lua script."""
    import schemas.batch_writes as batch_writes

    init = batch_writes.BatchWriter.__init__

    def patched(self: Any, redis: Any) -> None:
        init(self, redis)
        self._redis = redis

    _replace(batch_writes.BatchWriter, "__init__", patched)
    _replace(batch_writes.BatchWriter, "send", _pipeline_send)


def _model_encoders() -> None:
    """Verdicts (detector) and steps (worker) are built as pydantic models and encoded by
    ``wire.encode`` instead of the hand-written orjson encoders beside the models."""
    import detectors.consumer as consumer
    import workers.runner as runner
    from schemas.events import StepEvent, Verdict
    from schemas.wire import encode

    # the fast encoders' own parameter names, so a field added to them is passed on too
    names = tuple(inspect.signature(consumer.encode_verdict).parameters)

    def verdict(*values: Any) -> dict[str, bytes]:
        return encode(Verdict(**dict(zip(names, values, strict=False))))

    fields = tuple(inspect.signature(runner.encode_step).parameters)

    def step(*values: Any) -> dict[str, bytes]:
        return encode(StepEvent(**dict(zip(fields, values, strict=True))))

    _replace(consumer, "encode_verdict", verdict)
    _replace(runner, "encode_step", step)


ABLATIONS: dict[str, Callable[[], None]] = {
    "metrics": _no_metrics,
    "episode_summary": _no_episode_summary,
    "checkpoint": _no_checkpoint,
    "control_copy": _no_control_copy,
    "step_validation": _no_step_validation,
    "verdict_validation": _no_verdict_validation,
    "publish_wait": _no_publish_wait,
    "page_trace": _no_page_trace,
}
# what the seven removable costs above save together
COSTS: tuple[str, ...] = tuple(ABLATIONS)


def _all_of_them() -> None:
    """Every removable cost above at once: the most they could save together."""
    for name in COSTS:
        ABLATIONS[name]()


ABLATIONS["all"] = _all_of_them
# The hot-path machinery, each piece replaced by the plain library call (issue 13): kept
# only where it saves at least 10 % of a step's CPU (docs/sizing.md).
ABLATIONS.update(
    {
        "plain_writes": _plain_writes,
        "model_encoders": _model_encoders,
    }
)


async def one_run(name: str, episodes: int, steps: int) -> dict[str, Any]:
    """The pipeline once, in this process, with ``name`` switched off."""
    if name != "baseline":
        ABLATIONS[name]()
    async with bench_redis() as (url, prefix):
        redis = connect(url)

        async def redis_cpu() -> float:
            info = await redis.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        settings = Settings(redis_url=url, key_prefix=prefix)
        before = await redis_cpu()
        res = await pipeline_run(url, settings, episodes, steps)
        redis_us = (await redis_cpu() - before) / res["steps"] * 1e6
        await redis.aclose()
    return {
        "steps": res["steps"],
        "python_us": res["cpu_us_per_step"],
        "redis_us": redis_us,
        "results": {k: list(v) for k, v in res["results"].items()},
    }


def _child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "ablation.py"),
        "--run",
        name,
        "--episodes",
        str(args.episodes),
        "--steps",
        str(args.steps),
    ]
    out = subprocess.run(cmd, capture_output=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"ablation {name} failed:\n{out.stderr.decode()[-2000:]}")
    return orjson.loads(out.stdout.splitlines()[-1])


def main(args: argparse.Namespace) -> dict[str, Any]:
    names = ["baseline", *args.only]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(args.repeats):  # in alternation: a slow spell of the machine hits all
        for name in names:
            runs[name].append(_child(name, args))
    base = runs["baseline"]
    totals = [r["python_us"] + r["redis_us"] for r in base]
    base_total = min(totals)
    out: dict[str, Any] = {
        "episodes": args.episodes,
        "steps": base[0]["steps"],
        "repeats": args.repeats,
        "baseline_python_us_per_step": round(min(r["python_us"] for r in base), 1),
        "baseline_redis_us_per_step": round(min(r["redis_us"] for r in base), 1),
        "baseline_spread_pct": round((max(totals) - base_total) / base_total * 100, 1),
    }
    for name in args.only:
        mine = runs[name]
        total = min(r["python_us"] + r["redis_us"] for r in mine)
        out[f"{name}_python_us_per_step"] = round(min(r["python_us"] for r in mine), 1)
        out[f"{name}_redis_us_per_step"] = round(min(r["redis_us"] for r in mine), 1)
        out[f"{name}_saves_pct"] = round((base_total - total) / base_total * 100, 1)
        out[f"{name}_identical"] = all(r["results"] == base[0]["results"] for r in mine)
    return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=",".join(ABLATIONS), help="comma list of ablations")
    p.add_argument("--run", help=argparse.SUPPRESS)  # one run, in a child process
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.run:
        if args.run != "baseline" and args.run not in ABLATIONS:
            p.error(f"unknown ablation {args.run!r}")
        print(orjson.dumps(run(lambda: one_run(args.run, args.episodes, args.steps))).decode())
        return
    args.only = list(dict.fromkeys(x for x in args.only.split(",") if x))
    unknown = [x for x in args.only if x not in ABLATIONS]
    if unknown:
        p.error(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    out = main(args)
    print_table(
        "CPU per step with one cost switched off (minimum of the repeats)",
        list(out.items()),
        out if args.json else None,
    )


if __name__ == "__main__":
    cli()
