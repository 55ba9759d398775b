"""Fan-out of live events to the open SSE streams, with bounded queues.

A subscriber that falls ``maxsize`` events behind is dropped (its stream ends and the
browser's EventSource reconnects) instead of letting memory grow or slowing the feed
for everyone. Events are published as ready-made JSON so each is serialised once.
Streams are bounded in all and per client address, so one client cannot take every
slot and lock the other viewers out.
"""

import asyncio
from collections import Counter
from dataclasses import dataclass, field

CLOSE = b""


@dataclass(eq=False)
class Subscriber:
    episode_id: str | None
    kinds: frozenset[str] | None
    queue: asyncio.Queue[tuple[str, str, bytes]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    dropped: bool = False
    client: str = ""
    released: bool = False  # its stream has ended: its slot is free


class TooMany(Exception):
    """No stream slot: ``per_client`` says whether the client's own limit was the cause."""

    def __init__(self, per_client: bool) -> None:
        super().__init__("per client" if per_client else "in all")
        self.per_client = per_client


class Hub:
    def __init__(self, max_subscribers: int = 100, per_client: int = 8) -> None:
        self.max_subscribers = max_subscribers
        self.per_client = per_client
        self.subscribers: set[Subscriber] = set()
        self._by_client: Counter[str] = Counter()

    def subscribe(
        self, episode_id: str | None, kinds: frozenset[str] | None, client: str = ""
    ) -> Subscriber:
        """A new subscriber, or :class:`TooMany` when there is no slot for this client."""
        if self._by_client[client] >= self.per_client:
            raise TooMany(per_client=True)
        if len(self.subscribers) >= self.max_subscribers:
            raise TooMany(per_client=False)
        sub = Subscriber(episode_id, kinds, client=client)
        self.subscribers.add(sub)
        self._by_client[client] += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """The stream ended (also after a drop): its slot is free again."""
        self.subscribers.discard(sub)
        if sub.released:
            return
        sub.released = True
        self._by_client[sub.client] -= 1
        if self._by_client[sub.client] <= 0:
            del self._by_client[sub.client]

    def publish(self, kind: str, episode_id: str, event_id: str, data: bytes) -> None:
        for sub in list(self.subscribers):
            if sub.episode_id is not None and sub.episode_id != episode_id:
                continue
            if sub.kinds is not None and kind not in sub.kinds:
                continue
            try:
                sub.queue.put_nowait((kind, event_id, data))
            except asyncio.QueueFull:
                self._drop(sub)

    def close_all(self) -> None:
        """Ask every stream to end (service shutdown)."""
        for sub in list(self.subscribers):
            self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.subscribers.discard(sub)
        while True:  # make room for the close marker
            try:
                sub.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        sub.queue.put_nowait(("close", "", CLOSE))
