"""One monitored episode per Inspect sample: its spec, its step counter, its bookkeeping.

The hooks open an episode when a sample starts (:func:`open_episode`) and close it when
the sample ends; the tasks' solver and the recovery wrapper find it by the sample's
uuid. A BioBlue task's solver reports each environment step as an Inspect ``info`` event
(source :data:`STEP_SOURCE`) carrying the step's numbers; the hooks publish exactly
those. For any other sample the hooks publish every model and tool event as a step.
"""

from dataclasses import dataclass, field
from typing import Any

from schemas.episode import AgentSpec, EpisodeSpec
from schemas.events import StepEvent, ToolCall
from schemas.objectives import ObjectiveKind, ObjectiveSet, ObjectiveSpec

STEP_SOURCE = "runaway_monitor/step"
VERDICT_SOURCE = "runaway_monitor/verdict"
ENV_KEY = "runaway_environment"  # sample metadata: the BioBlue environment it plays

# any eval's sample: the detectors look at its tool calls and text (loops, repeats)
GENERIC_OBJECTIVES = ObjectiveSet(
    objectives=(ObjectiveSpec(name="task", kind=ObjectiveKind.UNBOUNDED),)
)


@dataclass
class SampleEpisode:
    episode_id: str
    spec: EpisodeSpec
    bioblue: bool
    registered: bool = False
    steps: int = 0  # the last step published (or handed to the hooks)
    published_by_hooks: bool = True
    outages_before: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    seen_events: set[str] = field(default_factory=set)  # Inspect notifies an event again
    # when it is updated (a model call once pending, then complete): one step per uuid


_episodes: dict[str, SampleEpisode] = {}


def episode_id_of(sample_uuid: str) -> str:
    return f"inspect-{sample_uuid}"


def sample_spec(
    sample_uuid: str, metadata: dict[str, Any], labels: dict[str, str]
) -> tuple[EpisodeSpec, bool]:
    """The episode spec of a sample: its BioBlue environment's, or the generic one."""
    from workers.environments.catalog import OBJECTIVES

    environment = metadata.get(ENV_KEY)
    bioblue = environment in OBJECTIVES
    spec = EpisodeSpec(
        episode_id=episode_id_of(sample_uuid),
        environment=environment if bioblue else None,
        env_options=dict(metadata.get("runaway_env_options") or {}) if bioblue else {},
        objectives=OBJECTIVES[environment] if bioblue else GENERIC_OBJECTIVES,
        seed=int(metadata.get("seed", 1)) if bioblue else 1,
        steps=int(metadata.get("steps", 100)) if bioblue else 100_000,
        agent=AgentSpec(kind="inspect", options={"model": labels.get("model", "")}),
        mitigation=str(metadata.get("mitigation") or "none"),
        labels={k: labels[k] for k in ("model", "mitigation") if k in labels},
    )
    return spec, bioblue


def open_episode(
    sample_uuid: str, metadata: dict[str, Any], labels: dict[str, str]
) -> SampleEpisode:
    spec, bioblue = sample_spec(sample_uuid, metadata, labels)
    episode = SampleEpisode(spec.episode_id, spec, bioblue, labels=labels)
    _episodes[sample_uuid] = episode
    return episode


def find_episode(sample_uuid: str) -> SampleEpisode | None:
    return _episodes.get(sample_uuid)


def close_episode(sample_uuid: str) -> SampleEpisode | None:
    return _episodes.pop(sample_uuid, None)


def bioblue_step(episode_id: str, data: dict[str, Any]) -> StepEvent:
    """The StepEvent of one BioBlue step, from the solver's ``info`` event data."""
    return StepEvent(
        episode_id=episode_id,
        step=data["step"],
        observation=data["observation"],
        action=data["action"],
        after=data.get("after"),
        noise=data.get("noise") or None,
        rewards=data.get("rewards") or {},
        text=data.get("text"),
        invalid_answers=data.get("invalid_answers", 0),
        mitigation=data.get("mitigation"),
    )


def model_step(episode_id: str, step: int, event: Any) -> StepEvent:
    """A generic sample's model call as a step: the answer's text and tool calls."""
    output = event.output
    message = output.message if output and output.choices else None
    calls = (
        [
            ToolCall(name=c.function, arguments=_arguments(c.arguments), id=c.id)
            for c in (message.tool_calls or [])
        ]
        if message is not None
        else []
    )
    text = output.completion if output else ""
    return StepEvent(
        episode_id=episode_id,
        step=step,
        text=text or None,
        tool_calls=calls[:32],
        usage=_usage(output),
    )


def tool_step(episode_id: str, step: int, event: Any) -> StepEvent:
    """A generic sample's tool call as a step: name, arguments and result."""
    result = (
        event.result if isinstance(event.result, str | int | float | bool) else str(event.result)
    )
    if isinstance(result, str) and len(result) > 60_000:
        result = result[:60_000]
    call = ToolCall(
        name=event.function, arguments=_arguments(event.arguments), result=result, id=event.id
    )
    return StepEvent(episode_id=episode_id, step=step, tool_calls=[call])


def _arguments(arguments: Any) -> dict[str, Any] | str:
    if isinstance(arguments, dict):
        import orjson

        return orjson.loads(orjson.dumps(arguments, default=str))
    return str(arguments)


def _usage(output: Any) -> dict[str, float] | None:
    usage = getattr(output, "usage", None)
    if usage is None:
        return None
    return {"input_tokens": float(usage.input_tokens), "output_tokens": float(usage.output_tokens)}
