"""Pending HTTP steps waiting for their verdict, keyed by (episode, step).

A request announces the step it waits for (:meth:`Waiters.expect`) before it publishes
it, so a verdict can never arrive before its waiter. The live feed
(:mod:`monitor.api.feed`) reads every verdict of a shard, the workers' episodes' too, and
hands each to :meth:`Waiters.on_verdict` / :meth:`Waiters.on_recovery`; only the awaited
ones are kept. A RecoveryCommand comes just before the Verdict of the same step and is
held until then.

Each request holds its own ticket (a future): two requests for the same step (a client's
retry racing its original) each wait on their own, and the one the store refuses drops
only its own ticket, never the accepted request's wait.
"""

import asyncio
from collections import OrderedDict

from schemas.events import RecoveryCommand, Verdict

Key = tuple[str, int]
Answer = tuple[Verdict, RecoveryCommand | None]
Ticket = asyncio.Future[Answer | None]  # one request's wait for one step's verdict


def _expire(fut: "asyncio.Future[Answer | None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Waiters:
    def __init__(self, buffer: int = 4096) -> None:
        self.buffer = buffer
        self._futures: dict[Key, list[asyncio.Future[Answer | None]]] = {}
        self._recoveries: dict[Key, RecoveryCommand] = {}
        self.savepoints: OrderedDict[str, int] = OrderedDict()  # last savepoint seen

    def __len__(self) -> int:
        return sum(len(f) for f in self._futures.values())

    def expect(self, episode_id: str, step: int) -> "asyncio.Future[Answer | None]":
        """A ticket for that step's verdict: take it before publishing the step, then
        :meth:`wait` on it (or :meth:`forget` it if the step was not published)."""
        fut: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault((episode_id, step), []).append(fut)
        return fut

    def forget(self, episode_id: str, step: int, ticket: "asyncio.Future[Answer | None]") -> None:
        """This request's step was not published after all (refused, or Redis failed)."""
        self._drop((episode_id, step), ticket)

    def _drop(self, key: Key, ticket: "asyncio.Future[Answer | None]") -> None:
        tickets = self._futures.get(key)
        if tickets is None:
            return
        if ticket in tickets:
            tickets.remove(ticket)
        if not tickets:
            del self._futures[key]
            self._recoveries.pop(key, None)

    def on_recovery(self, cmd: RecoveryCommand) -> None:
        key = (cmd.episode_id, cmd.step)
        if key in self._futures:
            self._recoveries[key] = cmd

    def on_verdict(self, verdict: Verdict) -> None:
        key = (verdict.episode_id, verdict.step)
        tickets = self._futures.get(key)
        if not tickets:
            return  # nobody here waits for it (a worker's episode, or wait=false)
        if verdict.savepoint_step is not None:
            self.savepoints[verdict.episode_id] = verdict.savepoint_step
            self.savepoints.move_to_end(verdict.episode_id)
            while len(self.savepoints) > self.buffer:
                self.savepoints.popitem(last=False)
        answer = (verdict, self._recoveries.pop(key, None))
        for fut in tickets:
            if not fut.done():
                fut.set_result(answer)

    async def wait(
        self, episode_id: str, step: int, ticket: "asyncio.Future[Answer | None]", timeout_s: float
    ) -> Answer | None:
        """The verdict of that step, or None after ``timeout_s``; ends this ticket's wait."""
        key = (episode_id, step)
        if ticket.done():
            self._drop(key, ticket)
            return ticket.result()
        timer = asyncio.get_running_loop().call_later(timeout_s, _expire, ticket)
        try:
            return await ticket
        finally:
            timer.cancel()
            self._drop(key, ticket)
