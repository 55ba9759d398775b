"""The replay agent: plays a recorded trajectory's answers, step by step.

It answers by the episode step (``context.step``), so a context restore does not shift
the recording; the verbatim recorded response is used where there is one, so the parser
sees exactly what the model wrote.
"""

from workers.agents.base import AgentContext, AgentFinished, Reply
from workers.recordings import Recording


class ReplayAgent:
    """Plays ``recording.steps[step - 1]``; :class:`AgentFinished` past the recording's end."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    async def act(self, context: AgentContext) -> Reply:
        if not 1 <= context.step <= len(self.recording.steps):
            raise AgentFinished(
                f"step {context.step} is outside the recording "
                f"({len(self.recording.steps)} steps, {self.recording.source})"
            )
        recorded = self.recording.steps[context.step - 1]
        if recorded.response and recorded.response.strip():
            return Reply(text=recorded.response)
        return Reply(text=context.env.format_action(recorded.action))

    async def aclose(self) -> None:
        return None
