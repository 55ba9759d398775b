"""Cost of the OpenTelemetry GenAI export per step, against the feed's own work per step.

Usage: ``python -m bench.otel_export [--rounds R] [--trials N] [--json]`` (the ``otel``
extra). The steps are the 50 shared BioBlue trials (or the first N) as real
``StepEvent`` objects, each with a ``Verdict``. The baseline is what the sidecar's feed
already does for each of them (decoding the two stream entries). The export costs the
event loop one queue put per batch (``on_events``, 500 events a batch as the feed reads
them); its own thread builds the spans (``on_event``) and hands them to a batch span
processor whose exporter discards them (the OTLP encoding and the HTTP post happen on
the processor's thread). Each is timed ``R`` times and the fastest round is kept.
"""

import argparse
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench.common import print_table
from monitor.integrations.otel import GenAIExporter
from schemas.events import Verdict
from schemas.wire import decode, encode
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _events(trials: int) -> list[Any]:
    out: list[Any] = []
    files = [f for f in sorted(BUNDLED_DIR.glob("*.tsv")) if f.name != "labels.tsv"]
    for f in files[:trials]:
        _spec, steps = events_from_recording(read_tsv(f))
        for s in steps:
            out += [
                s,
                Verdict(
                    episode_id=s.episode_id,
                    step=s.step,
                    verdict="continue",
                    savepoint_step=s.step,
                    runaway_index=0.1,
                    step_ts=s.ts,
                ),
            ]
    return out


def _fastest(fn: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--trials", type=int, default=50, help="how many shared trials")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    events = _events(args.trials)
    entries = [encode(e) for e in events]
    steps = len(events) // 2
    exporter = GenAIExporter(BatchSpanProcessor(_Discard(), max_queue_size=1 << 20))
    batches = [events[i : i + 500] for i in range(0, len(events), 500)]
    decode_s = _fastest(lambda: [decode(f) for f in entries], args.rounds)
    build_s = _fastest(lambda: [exporter.on_event(e) for e in events], args.rounds)
    loop_s = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for b in batches:
            exporter.on_events(b)
        loop_s = min(loop_s, time.perf_counter() - t0)
        exporter.force_flush(120)  # the thread's work, not the loop's: untimed
    assert exporter.dropped == 0
    exporter.shutdown()
    figures = {
        "steps": steps,
        "feed_decode_us_per_step": round(decode_s / steps * 1e6, 2),
        "loop_us_per_step": round(loop_s / steps * 1e6, 3),
        "span_thread_us_per_step": round(build_s / steps * 1e6, 2),
        "span_thread_vs_decode": round(build_s / decode_s, 2),
    }
    rows = [
        ("steps (step + verdict each)", steps),
        ("feed decode us/step (baseline)", figures["feed_decode_us_per_step"]),
        ("event loop us/step (queue put)", figures["loop_us_per_step"]),
        ("span thread us/step", figures["span_thread_us_per_step"]),
        ("span thread / baseline", figures["span_thread_vs_decode"]),
    ]
    print_table("OTel GenAI export per step", rows, figures if args.json else None)


if __name__ == "__main__":
    main()
