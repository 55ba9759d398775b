"""Pending HTTP steps waiting for their verdict, keyed by (episode, step).

The live feed (:mod:`monitor.api.feed`) hands every Verdict and RecoveryCommand it reads
to :meth:`Waiters.on_verdict` / :meth:`Waiters.on_recovery`. A RecoveryCommand comes
just before the Verdict of the same step; it is held until then. A verdict that arrives
before its request started waiting (possible when the detector is faster than the event
loop hands the request its publish reply) is kept briefly in a bounded buffer, so no
answer is ever lost to that race.
"""

import asyncio
from collections import OrderedDict

from schemas.events import RecoveryCommand, Verdict

Key = tuple[str, int]
Answer = tuple[Verdict, RecoveryCommand | None]


class Waiters:
    def __init__(self, buffer: int = 4096) -> None:
        self.buffer = buffer
        self._futures: dict[Key, asyncio.Future[Answer]] = {}
        self._recoveries: OrderedDict[Key, RecoveryCommand] = OrderedDict()
        self._early: OrderedDict[Key, Answer] = OrderedDict()
        self.savepoints: OrderedDict[str, int] = OrderedDict()  # last savepoint seen

    def __len__(self) -> int:
        return len(self._futures)

    def on_recovery(self, cmd: RecoveryCommand) -> None:
        self._recoveries[(cmd.episode_id, cmd.step)] = cmd
        self._trim(self._recoveries)

    def on_verdict(self, verdict: Verdict) -> None:
        key = (verdict.episode_id, verdict.step)
        answer = (verdict, self._recoveries.pop(key, None))
        if verdict.savepoint_step is not None:
            self.savepoints[verdict.episode_id] = verdict.savepoint_step
            self.savepoints.move_to_end(verdict.episode_id)
            self._trim(self.savepoints)
        fut = self._futures.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(answer)
        else:
            self._early[key] = answer
            self._trim(self._early)

    async def wait(self, episode_id: str, step: int, timeout_s: float) -> Answer | None:
        """The verdict of that step, or None after ``timeout_s``."""
        key = (episode_id, step)
        early = self._early.pop(key, None)
        if early is not None:
            return early
        fut = self._futures.get(key)
        if fut is None or fut.done():
            fut = self._futures[key] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            return None
        finally:
            if self._futures.get(key) is fut:
                del self._futures[key]

    def _trim(self, d: OrderedDict) -> None:  # type: ignore[type-arg]
        while len(d) > self.buffer:
            d.popitem(last=False)
