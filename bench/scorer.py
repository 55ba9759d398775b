"""Scorer throughput on one core: steps/s of ``EpisodeScorer.update`` vs a do-nothing loop.

Usage: ``python -m bench.scorer [--repeat N] [--json]``. The events are the 50 shared
BioBlue trials, built once (pydantic construction is not timed).
"""

import argparse
import time

import orjson

from detectors.scoring import EpisodeScorer
from workers.recordings import BUNDLED_DIR as DATA
from workers.recordings import events_from_recording, read_tsv


def load() -> list:
    eps = []
    for f in sorted(DATA.glob("*.tsv")):
        if f.name != "labels.tsv":
            eps.append(events_from_recording(read_tsv(f)))
    return eps


def measure(eps: list, repeat: int) -> dict:
    n = sum(len(ev) for _, ev in eps) * repeat
    t0 = time.perf_counter()
    for _ in range(repeat):
        for _spec, ev in eps:
            for e in ev:
                _ = e.step
    empty = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeat):
        for spec, ev in eps:
            sc = EpisodeScorer(spec)
            up = sc.update
            for e in ev:
                up(e)
    busy = time.perf_counter() - t0
    return {
        "steps": n,
        "scorer_steps_per_s": round(n / busy),
        "empty_loop_steps_per_s": round(n / empty),
        "ratio_scorer_to_empty": round(busy / empty, 1),
        "us_per_step": round(busy / n * 1e6, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = measure(load(), a.repeat)
    if a.json:
        print(orjson.dumps(r).decode())
    else:
        for k, v in r.items():
            print(f"{k:26} {v}")


if __name__ == "__main__":
    main()
