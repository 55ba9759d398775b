"""Running an experiment: the cells not done yet go through the pipeline; each finished
episode is recorded as it ends.

Resume is the default: an episode is done iff it has a line in ``episodes.jsonl``, so a
rerun after a crash or Ctrl-C runs exactly the failed, cancelled and never-started ones.
Failed episodes (outcome ``error``) and cancelled ones are not recorded, hence re-run.
"""

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from monitor.experiments.config import ConfigError, ExperimentConfig, parse_config
from monitor.experiments.grid import Cell, build_grid
from monitor.experiments.layout import Results
from monitor.experiments.progress import ProgressBar
from monitor.experiments.records import episode_records, read_log
from monitor.experiments.stats import summarise
from monitor.pipeline import run_episodes
from schemas.settings import Settings
from workers.runner import EpisodeResult
from workers.worker import AgentFactory

log = logging.getLogger(__name__)
FINISHED = ("done", "exhausted")
_ATTEMPT = re.compile(r"\.a\d+$")  # a worker's re-run of a reclaimed job


@dataclass
class ExperimentRun:
    """What one invocation did."""

    total: int
    done_before: int
    finished: int = 0
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False
    pipeline: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.done_before + self.finished == self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done_before": self.done_before,
            "finished": self.finished,
            "failed": len(self.failed),
            "interrupted": self.interrupted,
            "complete": self.complete,
        }


def prepare(results: Results, config: ExperimentConfig, config_text: str | None) -> set[str]:
    """Create the directory, refuse another experiment's, store the config; return done ids."""
    results.root.mkdir(parents=True, exist_ok=True)
    if results.config.exists():
        previous = parse_config(yaml.safe_load(results.config.read_text()), str(results.config))
        if previous.name != config.name:
            raise ConfigError(
                f"{results.root} holds experiment {previous.name!r}, not {config.name!r}: "
                "use another results directory"
            )
    text = config_text or yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    results.config.write_text(text)
    results.logs.mkdir(exist_ok=True)
    return results.clean()


class _Recorder:
    """The pipeline's ``on_result``: turns each finished episode's log into result lines."""

    def __init__(
        self, results: Results, cells: dict[str, Cell], run: ExperimentRun, bar: ProgressBar
    ) -> None:
        self.results, self.cells, self.run, self.bar = results, cells, run, bar

    def __call__(self, result: EpisodeResult) -> None:
        base = _ATTEMPT.sub("", result.episode_id)
        if result.outcome not in FINISHED or base not in self.cells:
            self.run.failed.append(f"{result.episode_id}: {result.outcome} {result.error or ''}")
            self.bar.episode_failed()
            return
        try:
            path = self.results.log_path(result.episode_id)
            if base != result.episode_id:  # keep logs/<episode_id>.jsonl the one name
                path = path.replace(self.results.log_path(base))
            events = read_log(path)
            episode, steps = episode_records(
                events, self.cells[base], self.results.relative_log(base)
            )
            episode["episode_id"] = base
            for s in steps:
                s["episode_id"] = base
            self.results.append(steps, episode)
        except Exception as exc:  # a bad log must not stop the other episodes
            log.exception("episode %s: cannot record", result.episode_id)
            self.run.failed.append(f"{result.episode_id}: not recorded: {exc}")
            self.bar.episode_failed()
            return
        self.run.finished += 1
        self.bar.episode_done(episode["flips"] > 0)


async def run_experiment(
    config: ExperimentConfig,
    root: Path,
    stop: asyncio.Event,
    *,
    settings: Settings | None = None,
    config_text: str | None = None,
    show_progress: bool = True,
    agent_factory: AgentFactory | None = None,
) -> ExperimentRun:
    """Run every cell of ``config`` not yet done in ``root``; write ``summary.json``."""
    results = Results(root)
    done = prepare(results, config, config_text)
    settings = (settings or Settings()).model_copy(update={"concurrency": config.concurrency})
    grid = build_grid(config, settings.worker_policy)
    pending = [spec for _, spec in grid if spec.episode_id not in done]
    cells = {spec.episode_id: cell for cell, spec in grid}
    run = ExperimentRun(total=len(grid), done_before=len(grid) - len(pending))
    bar = ProgressBar(run.total, run.done_before)
    if pending:
        drawing = asyncio.create_task(bar.run()) if show_progress else None
        try:
            run.pipeline = await run_episodes(
                settings,
                pending,
                stop,
                run_id=f"exp-{uuid.uuid4().hex[:8]}",
                show_progress=False,
                log_dir=results.logs,
                agent_factory=agent_factory,
                on_result=_Recorder(results, cells, run, bar),
            )
        finally:
            if drawing is not None:
                drawing.cancel()
                await asyncio.gather(drawing, return_exceptions=True)
                bar.draw(bar.stream.isatty(), end="\n")
    run.interrupted = stop.is_set() and not run.complete
    write_summary(results, config)
    return run


def write_summary(results: Results, config: ExperimentConfig | None = None) -> dict[str, Any]:
    """Aggregate the finished episodes per cell into ``summary.json``."""
    summary = summarise(results.episode_lines(), results.step_lines())
    if config is not None:
        summary["experiment"] = config.name
        summary["grid_episodes"] = len(build_grid(config))
    results.summary.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary
