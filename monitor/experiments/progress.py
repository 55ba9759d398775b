"""A one-line progress bar on stderr for an experiment (episodes done of the grid).

Why not the pipeline's line: an experiment resumes, so the bar counts the episodes done
in earlier runs too, and an ETA over the remaining ones is what a researcher waits on.
"""

import asyncio
import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, done_before: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done_before = done_before
        self.finished = 0
        self.flipped = 0
        self.failed = 0
        self.started = time.perf_counter()
        self.stream = stream or sys.stderr

    def episode_done(self, flipped: bool) -> None:
        self.finished += 1
        self.flipped += flipped

    def episode_failed(self) -> None:
        self.failed += 1

    def line(self, width: int = 30) -> str:
        done = self.done_before + self.finished
        filled = int(width * done / self.total) if self.total else width
        elapsed = time.perf_counter() - self.started
        rate = self.finished / elapsed if elapsed > 0 else 0.0
        left = self.total - done
        eta = f"{int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 else "?"
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} episodes  "
            f"flipped {self.flipped}  failed {self.failed}  {rate:.1f} ep/s  ETA {eta}"
        )

    async def run(self) -> None:
        """Redraw until cancelled: in place on a terminal, a line every 5 s otherwise."""
        tty = self.stream.isatty()
        while True:
            self.draw(tty)
            await asyncio.sleep(0.5 if tty else 5.0)

    def draw(self, tty: bool, end: str = "") -> None:
        if tty:
            print(f"\r{self.line()}\x1b[K", end=end, file=self.stream, flush=True)
        else:
            print(self.line(), file=self.stream, flush=True)
