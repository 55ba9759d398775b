"""A sample's link to its monitored episode: wait for each step's verdict and apply it.

Shared by the BioBlue loop (which acts on its History) and the recovery wrapper (which
acts on ``TaskState.messages``): both hand :meth:`EpisodeLink.apply` a target with
``confirm`` (a savepoint), ``reset`` (restore to it, with the reminder) and ``remind``.
A recovery command is applied once per command id; the detectors are told with a
``RecoveryApplied`` so they re-arm. When the monitor cannot be reached the sample goes
on unmonitored and the failed calls are counted in :meth:`EpisodeLink.summary`.
"""

from typing import Any, Protocol

from monitor.api.verdicts import Answer, Ticket
from monitor.integrations.inspect.channel import MonitorChannel, channel
from monitor.integrations.inspect.episodes import (
    SampleEpisode,
    bioblue_step,
    close_episode,
    find_episode,
    open_episode,
)
from schemas.episode import EpisodeSpec
from schemas.events import RecoveryApplied, StepEvent

LINK_KEY = "runaway_monitor:link"  # the sample store's entry: the link's summary


class Target(Protocol):
    def confirm(self, savepoint_step: int) -> None: ...
    def reset(self, savepoint_step: int, reminder: str | None) -> int: ...
    def remind(self, reminder: str | None) -> None: ...


class EpisodeLink:
    def __init__(self, ch: MonitorChannel, episode: SampleEpisode, own: bool) -> None:
        self.ch = ch
        self.episode = episode
        self.own = own  # no hooks publish this sample: the link does
        self.opened = own  # the link opened the episode (no hooks did): it closes it
        self.sample_uuid = ""
        self.online = False
        self.verdicts = 0
        self.timeouts = 0
        self.outages = 0
        self._tickets: dict[int, Ticket] = {}  # step -> this link's wait for its verdict
        self.recoveries: list[int] = []
        self.reminders: list[int] = []
        self.flags: dict[str, int] = {}
        self.last: Any = None  # the last verdict
        self._applied: set[str] = set()

    @property
    def episode_id(self) -> str:
        return self.episode.episode_id

    async def connect(self) -> bool:
        """Registered (when the link publishes) and following verdicts; counted if not."""
        if not self.online:
            if self.own and not self.episode.registered:
                self.episode.registered = await self.ch.register(
                    self.episode.spec, self.episode.labels
                )
            self.online = self.episode.registered and await self.ch.follow()
            if not self.online:
                self.outages += 1
        return self.online

    def expect(self, step: int) -> None:
        self._tickets[step] = self.ch.expect(self.episode_id, step)

    async def publish_if_no_hooks(self, record: dict[str, Any]) -> None:
        if self.own and await self.connect():
            await self.publish(bioblue_step(self.episode_id, record))

    async def publish(self, event: StepEvent) -> None:
        self.episode.steps = event.step
        if not await self.ch.step(event):
            self.outages += 1
            self.online = False

    async def verdict(self, step: int) -> Answer | None:
        """The step's verdict; None (counted) when offline or not in time."""
        ticket = self._tickets.pop(step, None) or self.ch.expect(self.episode_id, step)
        if not await self.connect():
            self.ch.waiters.forget(self.episode_id, step, ticket)
            return None
        answer = await self.ch.verdict(self.episode_id, step, ticket)
        if answer is None:
            self.timeouts += 1
        return answer

    async def apply(self, answer: Answer | None, target: Target) -> str:
        """Apply a verdict to ``target``; the action taken (``continue`` when none)."""
        if answer is None:
            return "continue"
        verdict, cmd = answer
        self.verdicts += 1
        self.last = verdict
        for flag in verdict.detections:
            self.flags[flag] = self.flags.get(flag, 0) + 1
        if verdict.savepoint_step is not None:
            target.confirm(verdict.savepoint_step)
        if cmd is not None:
            if cmd.command_id in self._applied:
                return "continue"
            self._applied.add(cmd.command_id)
            return await self._command(cmd, verdict.step, target)
        if verdict.verdict == "remind":
            target.remind(verdict.reminder)
            self.reminders.append(verdict.step)
            return "remind"
        return verdict.verdict

    async def _command(self, cmd: Any, step: int, target: Target) -> str:
        if cmd.action == "remind":
            target.remind(cmd.reminder)
            self.reminders.append(step)
            return "remind"
        dropped = target.reset(cmd.savepoint_step, cmd.reminder)
        if dropped < 0:
            return "continue"  # the mitigation ignores recoveries
        self.recoveries.append(step)
        await self.ch.recovered(
            RecoveryApplied(
                episode_id=self.episode_id,
                step=step,
                command_id=cmd.command_id,
                savepoint_step=cmd.savepoint_step,
                messages_dropped=dropped,
            )
        )
        return "reset"

    async def close(self, steps: int) -> None:
        """Finish an episode the link opened itself (the hooks finish theirs)."""
        if not self.opened:
            return
        close_episode(self.sample_uuid)
        if self.episode.registered:
            await self.ch.finish(self.episode_id, steps)

    def summary(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "verdicts": self.verdicts,
            "verdict_timeouts": self.timeouts,
            "monitor_outages": self.outages,
            "recoveries": self.recoveries,
            "reminders": self.reminders,
            "flags": self.flags,
        }


async def link_episode(sample_uuid: str, spec: EpisodeSpec | None = None) -> EpisodeLink:
    """The sample's link: to the episode the hooks opened, or to one of its own."""
    ch = channel()
    episode = find_episode(sample_uuid)
    own = episode is None
    if episode is None:
        metadata: dict[str, Any] = {}
        if spec is not None and spec.environment:
            metadata = {
                "runaway_environment": spec.environment,
                "seed": spec.seed,
                "steps": spec.steps,
                "mitigation": spec.mitigation,
                "runaway_env_options": spec.env_options,
            }
        episode = open_episode(sample_uuid, metadata, {"source": "inspect"})
    link = EpisodeLink(ch, episode, own)
    link.sample_uuid = sample_uuid
    await link.connect()
    return link
