"""Fan-out of live events to the open SSE streams, with bounded queues.

A subscriber that falls ``maxsize`` events behind is dropped (its stream ends and the
browser's EventSource reconnects) instead of letting memory grow or slowing the feed
for everyone. Events are published as ready-made JSON so each is serialised once.
"""

import asyncio
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


class Hub:
    def __init__(self, max_subscribers: int = 100) -> None:
        self.max_subscribers = max_subscribers
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, episode_id: str | None, kinds: frozenset[str] | None) -> Subscriber | None:
        """A new subscriber, or None when the service already has as many as it allows."""
        if len(self.subscribers) >= self.max_subscribers:
            return None
        sub = Subscriber(episode_id, kinds)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

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
