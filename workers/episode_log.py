"""Per-episode JSONL logs: every event an episode published or received, one per line.

``replay``, ``evaluate`` and ``plot`` read these files like the BioBlue recordings. Lines
are kept in memory during the episode and written once at its end, off the event loop.
"""

import asyncio
from pathlib import Path
from typing import Any


class EpisodeLog:
    def __init__(self, directory: Path, episode_id: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in episode_id)
        self.path = directory / f"{safe}.jsonl"
        self._lines: list[bytes] = []

    def add(self, event: Any) -> None:
        self.add_json(event.__pydantic_serializer__.to_json(event))

    def add_json(self, data: bytes) -> None:
        """An event already encoded (the ``d`` field of its stream entry)."""
        self._lines.append(data)

    async def write(self) -> Path:
        def _write() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"\n".join(self._lines) + b"\n")

        await asyncio.to_thread(_write)
        return self.path
