"""Pending HTTP steps waiting for their verdict, keyed by (episode, step).

A request announces the step it waits for (:meth:`Waiters.expect`) before it publishes
it, so a verdict can never arrive before its waiter. The live feed
(:mod:`monitor.api.feed`) reads every verdict of a shard, the workers' episodes' too, and
hands each to :meth:`Waiters.on_verdict` / :meth:`Waiters.on_recovery`; only the awaited
ones are kept. A RecoveryCommand comes just before the Verdict of the same step and is
held until then.
"""

import asyncio
from collections import OrderedDict

from schemas.events import RecoveryCommand, Verdict

Key = tuple[str, int]
Answer = tuple[Verdict, RecoveryCommand | None]


def _expire(fut: "asyncio.Future[Answer | None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Waiters:
    def __init__(self, buffer: int = 4096) -> None:
        self.buffer = buffer
        self._futures: dict[Key, asyncio.Future[Answer | None]] = {}
        self._recoveries: dict[Key, RecoveryCommand] = {}
        self.savepoints: OrderedDict[str, int] = OrderedDict()  # last savepoint seen

    def __len__(self) -> int:
        return len(self._futures)

    def expect(self, episode_id: str, step: int) -> None:
        """Start waiting for that step's verdict: call it before publishing the step, then
        :meth:`wait` (or :meth:`forget` if the step was not published)."""
        key = (episode_id, step)
        if key not in self._futures:
            self._futures[key] = asyncio.get_running_loop().create_future()

    def forget(self, episode_id: str, step: int) -> None:
        """The step was not published after all (refused, or Redis failed)."""
        self._futures.pop((episode_id, step), None)
        self._recoveries.pop((episode_id, step), None)

    def on_recovery(self, cmd: RecoveryCommand) -> None:
        key = (cmd.episode_id, cmd.step)
        if key in self._futures:
            self._recoveries[key] = cmd

    def on_verdict(self, verdict: Verdict) -> None:
        key = (verdict.episode_id, verdict.step)
        fut = self._futures.get(key)
        if fut is None or fut.done():
            return  # nobody here waits for it (a worker's episode, or wait=false)
        if verdict.savepoint_step is not None:
            self.savepoints[verdict.episode_id] = verdict.savepoint_step
            self.savepoints.move_to_end(verdict.episode_id)
            while len(self.savepoints) > self.buffer:
                self.savepoints.popitem(last=False)
        fut.set_result((verdict, self._recoveries.pop(key, None)))

    async def wait(self, episode_id: str, step: int, timeout_s: float) -> Answer | None:
        """The verdict of that step, or None after ``timeout_s``; ends the wait."""
        key = (episode_id, step)
        self.expect(episode_id, step)
        fut = self._futures[key]
        if fut.done():
            del self._futures[key]
            return fut.result()
        timer = asyncio.get_running_loop().call_later(timeout_s, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            if self._futures.get(key) is fut:
                del self._futures[key]
            self._recoveries.pop(key, None)
