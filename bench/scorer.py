"""Scorer throughput on one core: steps/s of ``EpisodeScorer.update`` vs a do-nothing loop.

Usage: ``python -m bench.scorer [--repeat N] [--rounds R] [--json]``. The events are the 50
shared BioBlue trials as real ``StepEvent`` objects (the pipeline's input), built once
(pydantic construction is not timed); every episode gets a fresh scorer, so nothing is
cached across trials. Each loop is timed ``R`` times and the fastest round is reported
(as ``timeit`` does), which filters out noise from other processes on a shared machine;
short rounds (2 passes over the trials, 10,000 steps) and many of them filter it best.
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


def _empty(eps: list, repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        for _spec, ev in eps:
            for e in ev:
                _ = e.step
    return time.perf_counter() - t0


def _busy(eps: list, repeat: int, scorer: type) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        for spec, ev in eps:
            sc = scorer(spec)
            up = sc.update
            for e in ev:
                up(e)
    return time.perf_counter() - t0


def measure(eps: list, repeat: int, rounds: int = 5) -> dict:
    n = sum(len(ev) for _, ev in eps) * repeat
    empty = busy = float("inf")
    for _ in range(rounds):  # interleaved, so that a busy spell on the machine hits both
        empty = min(empty, _empty(eps, repeat))
        busy = min(busy, _busy(eps, repeat, EpisodeScorer))
    return {
        "steps": n,
        "scorer_steps_per_s": round(n / busy),
        "empty_loop_steps_per_s": round(n / empty),
        "ratio_scorer_to_empty": round(busy / empty, 1),
        "us_per_step": round(busy / n * 1e6, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=2, help="passes over the 50 trials per round")
    p.add_argument("--rounds", type=int, default=25, help="timed rounds; the fastest counts")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = measure(load(), a.repeat, a.rounds)
    if a.json:
        print(orjson.dumps(r).decode())
    else:
        for k, v in r.items():
            print(f"{k:26} {v}")


if __name__ == "__main__":
    main()
