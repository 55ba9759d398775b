"""An episode's inbox of control events (verdicts, recovery commands).

Why not an ``asyncio.Queue`` under ``asyncio.timeout``: the runner waits for a verdict at
nearly every step, and a Queue getter plus a Timeout context cost several times more than
one future and one timer handle. The wait is also not a deadline: on timeout the runner
only logs and waits again, so :meth:`Inbox.next` returns None instead of raising.
"""

import asyncio
from collections import deque
from typing import Any


def _wake(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox:
    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Any) -> None:
        """Deliver an event (from the reader task; never blocks)."""
        self._items.append(event)
        if self._waiter is not None:
            _wake(self._waiter)

    def get_nowait(self) -> Any | None:
        return self._items.popleft() if self._items else None

    async def next(self, timeout_s: float) -> Any | None:
        """The next event, waiting up to ``timeout_s``; None if none came by then."""
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout_s, _wake, waiter)
            try:
                await waiter  # a cancellation of the task propagates from here as usual
            finally:
                timer.cancel()
                self._waiter = None
        return self._items.popleft() if self._items else None
