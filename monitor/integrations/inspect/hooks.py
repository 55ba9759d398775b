"""Live monitoring of any Inspect eval: every sample's steps into the monitor's streams.

Enabled with ``RUNAWAY_INSPECT_HOOKS=1`` (and ``REDIS_URL`` naming the monitor's Redis);
off by default, since installing the package registers the hooks for every eval. Each
sample becomes an episode (``inspect-<sample uuid>``) whose summary carries the sample
id, epoch, eval id, task and model. Inspect already catches a hook's exception; these
never raise one anyway: a monitor outage is logged and counted by the channel.
"""

import logging
from typing import Any

from inspect_ai.hooks import Hooks, RunEnd, SampleEnd, SampleEvent, SampleStart, TaskStart

from monitor.integrations.inspect.channel import (
    channel,
    channels_open,
    close_channels,
    settings,
)
from monitor.integrations.inspect.episodes import (
    STEP_SOURCE,
    bioblue_step,
    close_episode,
    find_episode,
    model_step,
    open_episode,
    tool_step,
)

log = logging.getLogger(__name__)


def hooks_enabled() -> bool:
    return settings().inspect_hooks


class RunawayHooks(Hooks):
    """Streams samples' steps to runaway-monitor (registered as ``runaway_monitor/hooks``)."""

    def __init__(self) -> None:
        self._tasks: dict[str, dict[str, str]] = {}  # eval id -> task, model

    def enabled(self) -> bool:
        return hooks_enabled()

    async def on_task_start(self, data: TaskStart) -> None:
        self._tasks[data.eval_id] = {"task": data.spec.task, "model": data.spec.model}

    async def on_sample_start(self, data: SampleStart) -> None:
        summary = data.summary
        labels = {
            "source": "inspect",
            **self._tasks.get(data.eval_id, {}),
            "eval_id": data.eval_id,
            "run_id": data.run_id,
            "sample_id": str(summary.id),
            "epoch": str(summary.epoch),
        }
        metadata = dict(summary.metadata or {})
        if "mitigation" in metadata:
            labels["mitigation"] = str(metadata["mitigation"])
        episode = open_episode(data.sample_id, metadata, labels)
        episode.registered = await channel().register(episode.spec, labels)

    async def on_sample_event(self, data: SampleEvent) -> None:
        episode = find_episode(data.sample_id)
        if episode is None or not episode.registered or not episode.published_by_hooks:
            return
        event: Any = data.event
        kind = event.event
        if event.uuid is not None:
            if event.uuid in episode.seen_events:
                return
            episode.seen_events.add(event.uuid)
        if episode.bioblue:
            if kind != "info" or event.source != STEP_SOURCE:
                return
            step = bioblue_step(episode.episode_id, event.data)
        elif kind == "model":
            step = model_step(episode.episode_id, episode.steps + 1, event)
        elif kind == "tool":
            step = tool_step(episode.episode_id, episode.steps + 1, event)
        else:
            return
        episode.steps = step.step
        await channel().step(step)

    async def on_sample_end(self, data: SampleEnd) -> None:
        episode = close_episode(data.sample_id)
        if episode is None or not episode.registered:
            return
        reason = "error" if data.sample.error else "done"
        await channel().finish(episode.episode_id, episode.steps, reason)


class ChannelCleanup(Hooks):
    """Closes the monitor channels an eval opened (the hooks' or the recovery wrapper's,
    which works without the hooks) when its run ends; enabled only while one is open.
    Registered as ``runaway_monitor/cleanup``."""

    def enabled(self) -> bool:
        return channels_open()

    async def on_run_end(self, data: RunEnd) -> None:
        await close_channels()
