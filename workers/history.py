"""The agent's context (message history) with savepoints.

A savepoint is the length of the history right after a step's answer; restoring one
drops everything after it. Only steps from the last savepoint the detectors confirmed
as safe onwards are kept, so memory stays bounded however long the episode.
"""

from workers.agents.base import Message


class History:
    def __init__(self, system_prompt: str) -> None:
        self.messages: list[Message] = [{"role": "system", "content": system_prompt}]
        self._snapshots: dict[int, int] = {0: 1}
        self.safe_step = 0
        self.pending_reminder: str | None = None

    def add_observation(self, text: str) -> None:
        """Append the step's observation; a pending reminder goes in front of it."""
        if self.pending_reminder:
            text = f"{self.pending_reminder}\n\n{text}"
            self.pending_reminder = None
        self.messages.append({"role": "user", "content": text})

    def add_answer(self, step: int, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
        self._snapshots[step] = len(self.messages)

    def confirm_safe(self, step: int) -> None:
        """The detectors judged ``step`` safe: it becomes the savepoint; older ones go."""
        if step <= self.safe_step or step not in self._snapshots:
            return
        self.safe_step = step
        for old in [s for s in self._snapshots if s < step]:
            del self._snapshots[old]

    def restore(self, savepoint_step: int, reminder: str | None = None) -> int:
        """Drop the history after ``savepoint_step`` (or the nearest older savepoint kept).

        Returns the number of messages dropped. Steps after the savepoint stay restorable
        only up to it: the runaway answers leave the context.
        """
        kept = [s for s in self._snapshots if s <= savepoint_step]
        step = max(kept) if kept else min(self._snapshots)
        length = self._snapshots[step]
        dropped = len(self.messages) - length
        del self.messages[length:]
        for later in [s for s in self._snapshots if s > step]:
            del self._snapshots[later]
        self.pending_reminder = reminder
        return dropped
