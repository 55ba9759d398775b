"""The agent's context (message history) with savepoints.

A savepoint is the length of the history right after a step's answer; restoring one
drops everything after it. Only steps from the last savepoint the detectors confirmed
as safe onwards are kept, so memory stays bounded however long the episode.
"""

from workers.agents.base import Message

SUMMARY_HEADER = "Your own summary of the steps so far:"


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

    def window(self, steps: int | None) -> list[Message]:
        """What the model sees: everything, or the system prompt plus the last ``steps``."""
        if steps is None or len(self.messages) <= 2 * steps + 2:
            return self.messages
        return [self.messages[0], *self.messages[-(2 * steps + 1) :]]

    def compress(self, step: int, summary: str) -> None:
        """Replace the history up to ``step`` by the model's own summary of it.

        The summary goes into the system message; ``step`` becomes the only savepoint, so a
        later restore returns to the summarised state.
        """
        system = self.messages[0]["content"].split(SUMMARY_HEADER)[0].rstrip()
        content = f"{system}\n\n{SUMMARY_HEADER}\n{summary.strip()}"
        self.messages = [{"role": "system", "content": content}]
        self._snapshots = {step: 1}
        self.safe_step = step

    def truncate(self, reminder: str | None = None) -> int:
        """Erase the whole history but the system prompt; the messages dropped."""
        dropped = len(self.messages) - 1
        del self.messages[1:]
        self._snapshots = {self.safe_step: 1}
        self.pending_reminder = reminder
        return dropped

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
